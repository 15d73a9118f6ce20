/* The test bench's own channel, apart from the modem's UART: semihosting, which QEMU serves with
 * -semihosting-config. The firmware reads its settings and the CA certificate through it and
 * writes its report there, one line per step; at the end it asks QEMU to exit with its verdict. */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

/* The value of "NAME=value" among the words of the command line (QEMU's arg= items) into value;
 * 0 when there is none or it does not fit. */
int bench_setting(const char *name, char *value, size_t capacity);

/* The whole of a host file, up to capacity bytes; -1 when it cannot be read or is larger. */
long bench_read_file(const char *path, uint8_t *buffer, size_t capacity);

/* One report line (a line end is added). */
void bench_report(const char *format, ...) __attribute__((format(printf, 1, 2)));

__attribute__((noreturn)) void bench_finish(int passed);
__attribute__((noreturn)) void bench_finish_with(const char *line);

#endif
