/* The board: the LM3S6965's clock, a millisecond tick, and UART0, which is wired to the modem. */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

#define MODEM_BAUD 115200u

void board_init(void);

/* Milliseconds since board_init; wraps after 49 days, so compare with time_reached. */
uint32_t millis(void);
int time_reached(uint32_t deadline);

/* Sleep until the next interrupt (a received byte or the tick), unless a byte is already waiting. */
void wait_for_interrupt(void);

/* The modem's UART: bytes received by the interrupt handler wait in a ring buffer. */
void modem_write(const void *data, size_t length);
int modem_read_byte(void);          /* -1 when nothing is waiting */
int modem_rx_waiting(void);

struct uart_counters {
    uint32_t ring_overflows;        /* bytes lost because the ring buffer was full */
    uint32_t line_errors;           /* overrun, break, parity or framing errors the UART flagged */
    uint32_t max_waiting;           /* the most bytes that ever waited in the ring buffer */
};
struct uart_counters modem_uart_counters(void);

void systick_handler(void);
void uart0_handler(void);

#endif
