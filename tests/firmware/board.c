/* Clock, tick and the modem UART of the LM3S6965, register by register as its data sheet gives
 * them. The same code runs on QEMU's lm3s6965evb and on the chip. */

#include "board.h"

#include "ring.h"

#define REG(address) (*(volatile uint32_t *)(address))

/* System control */
#define SYSCTL_RIS      REG(0x400FE050u)
#define SYSCTL_RCC      REG(0x400FE060u)
#define SYSCTL_RCGC1    REG(0x400FE104u)
#define SYSCTL_RCGC2    REG(0x400FE108u)

#define RCC_OSCSRC_MASK (3u << 4)
#define RCC_XTAL_MASK   (0xFu << 6)
#define RCC_XTAL_8MHZ   (0xEu << 6)
#define RCC_BYPASS      (1u << 11)
#define RCC_OEN         (1u << 12)
#define RCC_PWRDN       (1u << 13)
#define RCC_USESYSDIV   (1u << 22)
#define RCC_SYSDIV_MASK (0xFu << 23)
#define RCC_SYSDIV_4    (3u << 23)      /* 200 MHz PLL / 4 */
#define RIS_PLLLRIS     (1u << 6)
#define CPU_HZ          50000000u

/* GPIO port A: UART0 receives on PA0 and transmits on PA1. */
#define GPIOA_AFSEL     REG(0x40004420u)
#define GPIOA_DEN       REG(0x4000451Cu)

/* UART0 (a PL011) */
#define UART0_DR        REG(0x4000C000u)
#define UART0_FR        REG(0x4000C018u)
#define UART0_IBRD      REG(0x4000C024u)
#define UART0_FBRD      REG(0x4000C028u)
#define UART0_LCRH      REG(0x4000C02Cu)
#define UART0_CTL       REG(0x4000C030u)
#define UART0_IFLS      REG(0x4000C034u)
#define UART0_IM        REG(0x4000C038u)
#define UART0_ICR       REG(0x4000C044u)

#define FR_RXFE         (1u << 4)
#define FR_TXFF         (1u << 5)
#define DR_ERRORS       (0xFu << 8)     /* framing, parity, break, overrun */
#define LCRH_FEN        (1u << 4)
#define LCRH_WLEN_8     (3u << 5)
#define CTL_UARTEN      (1u << 0)
#define CTL_TXE         (1u << 8)
#define CTL_RXE         (1u << 9)
#define IFLS_RX_HALF    (2u << 3)
#define INT_RX          (1u << 4)
#define INT_RX_TIMEOUT  (1u << 6)       /* the FIFO holds bytes and the line went quiet */

/* Cortex-M3 core peripherals */
#define SYST_CSR        REG(0xE000E010u)
#define SYST_RVR        REG(0xE000E014u)
#define SYST_CVR        REG(0xE000E018u)
#define NVIC_ISER0      REG(0xE000E100u)
#define UART0_IRQ       5u

static volatile uint32_t ticks;
static struct ring rx;
static volatile uint32_t ring_overflows, line_errors;

static void clock_init(void)
{
    /* Run from the PLL at 50 MHz: bypass it while it is reconfigured, feed it the board's 8 MHz
     * crystal, power it up, divide by 4, and switch over once it reports lock. */
    uint32_t rcc = SYSCTL_RCC;
    rcc |= RCC_BYPASS;
    rcc &= ~RCC_USESYSDIV;
    SYSCTL_RCC = rcc;
    rcc &= ~(RCC_XTAL_MASK | RCC_OSCSRC_MASK | RCC_PWRDN | RCC_OEN | RCC_SYSDIV_MASK);
    rcc |= RCC_XTAL_8MHZ | RCC_SYSDIV_4 | RCC_USESYSDIV;
    SYSCTL_RCC = rcc;
    for (uint32_t spins = 0; !(SYSCTL_RIS & RIS_PLLLRIS) && spins < 1000000u; spins++) {
    }
    SYSCTL_RCC = rcc & ~RCC_BYPASS;
}

static void tick_init(void)
{
    SYST_RVR = CPU_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u;  /* the core clock, the interrupt, enabled */
}

static void uart_init(void)
{
    SYSCTL_RCGC1 |= 1u;     /* UART0 */
    SYSCTL_RCGC2 |= 1u;     /* GPIO port A */
    (void)SYSCTL_RCGC2;     /* a few clocks pass before the peripherals may be touched */
    GPIOA_AFSEL |= 3u;
    GPIOA_DEN |= 3u;

    UART0_CTL = 0;
    /* Divisor = CPU_HZ / (16 * baud), in 16.6 fixed point, rounded. */
    uint32_t divisor64 = (CPU_HZ * 4u + MODEM_BAUD / 2u) / MODEM_BAUD;
    UART0_IBRD = divisor64 >> 6;
    UART0_FBRD = divisor64 & 63u;
    UART0_LCRH = LCRH_WLEN_8 | LCRH_FEN;    /* 8N1 with the 16-byte FIFOs; writing LCRH latches the rate */
    UART0_IFLS = IFLS_RX_HALF;
    UART0_ICR = 0x7FFu;
    UART0_IM = INT_RX | INT_RX_TIMEOUT;
    NVIC_ISER0 = 1u << UART0_IRQ;
    UART0_CTL = CTL_UARTEN | CTL_TXE | CTL_RXE;
}

void board_init(void)
{
    clock_init();
    tick_init();
    uart_init();
}

uint32_t millis(void)
{
    return ticks;
}

int time_reached(uint32_t deadline)
{
    return (int32_t)(ticks - deadline) >= 0;
}

void systick_handler(void)
{
    ticks++;
}

void uart0_handler(void)
{
    /* Empty the FIFO: a byte left behind would wait for the receive time-out. */
    while (!(UART0_FR & FR_RXFE)) {
        uint32_t word = UART0_DR;
        if (word & DR_ERRORS) {
            line_errors++;
            continue;
        }
        if (!ring_put(&rx, (uint8_t)word))
            ring_overflows++;
    }
    UART0_ICR = INT_RX | INT_RX_TIMEOUT;
}

void wait_for_interrupt(void)
{
    /* With interrupts masked, an interrupt that comes between the test and WFI still wakes the
     * core (it stays pending), and is taken as soon as they are unmasked again. */
    __asm volatile("cpsid i" ::: "memory");
    if (ring_empty(&rx))
        __asm volatile("wfi" ::: "memory");
    __asm volatile("cpsie i" ::: "memory");
}

void modem_write(const void *data, size_t length)
{
    const uint8_t *bytes = data;
    for (size_t i = 0; i < length; i++) {
        while (UART0_FR & FR_TXFF) {
        }
        UART0_DR = bytes[i];
    }
}

int modem_read_byte(void)
{
    return ring_get(&rx);
}

int modem_rx_waiting(void)
{
    return (int)ring_count(&rx);
}

struct uart_counters modem_uart_counters(void)
{
    struct uart_counters counters = {ring_overflows, line_errors, rx.high_water};
    return counters;
}
