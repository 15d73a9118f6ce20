/* Reset and exception entry for the LM3S6965: the vector table, the C run-time set-up, and the
 * handlers of faults, which report and stop instead of spinning where nobody sees them. */

#include <stdint.h>
#include <string.h>

#include "board.h"
#include "bench.h"

extern uint32_t stack_top;
extern uint32_t data_image, data_start, data_end, bss_start, bss_end;

int main(void);
void reset_handler(void);
void fault_handler(void);
void unused_handler(void);

/* Entry 0 is the initial stack pointer, entries 1 to 15 the Cortex-M3 exceptions, then the chip's
 * interrupts in the order of the LM3S6965 data sheet; only the first seven are wired here (GPIO
 * ports A to E, UART0, UART1), since no other interrupt is ever enabled. */
__attribute__((section(".vectors"), used))
static const uintptr_t vector_table[16 + 7] = {
    (uintptr_t)&stack_top,
    (uintptr_t)reset_handler,
    (uintptr_t)fault_handler,   /* NMI */
    (uintptr_t)fault_handler,   /* HardFault */
    (uintptr_t)fault_handler,   /* MemManage */
    (uintptr_t)fault_handler,   /* BusFault */
    (uintptr_t)fault_handler,   /* UsageFault */
    0, 0, 0, 0,                 /* reserved */
    (uintptr_t)unused_handler,  /* SVCall */
    (uintptr_t)unused_handler,  /* DebugMonitor */
    0,                          /* reserved */
    (uintptr_t)unused_handler,  /* PendSV */
    (uintptr_t)systick_handler,
    (uintptr_t)unused_handler,  /* GPIO port A */
    (uintptr_t)unused_handler,  /* GPIO port B */
    (uintptr_t)unused_handler,  /* GPIO port C */
    (uintptr_t)unused_handler,  /* GPIO port D */
    (uintptr_t)unused_handler,  /* GPIO port E */
    (uintptr_t)uart0_handler,
    (uintptr_t)unused_handler,  /* UART1 */
};

void reset_handler(void)
{
    memcpy(&data_start, &data_image, (size_t)((char *)&data_end - (char *)&data_start));
    memset(&bss_start, 0, (size_t)((char *)&bss_end - (char *)&bss_start));
    bench_finish(main() == 0);
}

void fault_handler(void)
{
    bench_finish_with("result: FAIL fault");
}

void unused_handler(void)
{
    bench_finish_with("result: FAIL unexpected interrupt");
}
