/* Semihosting calls (the ARM semihosting specification: BKPT 0xAB with the operation in r0 and a
 * pointer to its arguments in r1), used only for the test bench's channel. */

#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
    SYS_OPEN = 0x01,
    SYS_CLOSE = 0x02,
    SYS_WRITE0 = 0x04,
    SYS_READ = 0x06,
    SYS_FLEN = 0x0C,
    SYS_GET_CMDLINE = 0x15,
    SYS_EXIT = 0x18,
};
enum {
    OPEN_MODE_READ_BINARY = 1,
    EXIT_APPLICATION_DONE = 0x20026,   /* QEMU exits with status 0 */
    EXIT_RUNTIME_ERROR = 0x20023,      /* any other reason: status 1 */
};

static int semihost(int operation, const void *arguments)
{
    register int r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = arguments;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static char command_line[512];
static int command_line_read;

int bench_setting(const char *name, char *value, size_t capacity)
{
    if (!command_line_read) {
        uintptr_t arguments[2] = {(uintptr_t)command_line, sizeof command_line - 1};
        if (semihost(SYS_GET_CMDLINE, arguments) != 0)
            command_line[0] = '\0';
        command_line_read = 1;
    }
    size_t length = strlen(name);
    for (const char *word = command_line; *word; ) {
        size_t word_length = strcspn(word, " ");
        if (word_length > length && strncmp(word, name, length) == 0 && word[length] == '=') {
            size_t value_length = word_length - length - 1;
            if (value_length >= capacity)
                return 0;
            memcpy(value, word + length + 1, value_length);
            value[value_length] = '\0';
            return 1;
        }
        word += word_length;
        word += strspn(word, " ");
    }
    return 0;
}

long bench_read_file(const char *path, uint8_t *buffer, size_t capacity)
{
    uintptr_t open_arguments[3] = {(uintptr_t)path, OPEN_MODE_READ_BINARY, strlen(path)};
    int handle = semihost(SYS_OPEN, open_arguments);
    if (handle < 0)
        return -1;
    uintptr_t handle_argument[1] = {(uintptr_t)handle};
    long length = semihost(SYS_FLEN, handle_argument);
    if (length >= 0 && (size_t)length <= capacity) {
        uintptr_t read_arguments[3] = {(uintptr_t)handle, (uintptr_t)buffer, (uintptr_t)length};
        if (semihost(SYS_READ, read_arguments) != 0)    /* the count of bytes not read */
            length = -1;
    } else {
        length = -1;
    }
    semihost(SYS_CLOSE, handle_argument);
    return length;
}

void bench_report(const char *format, ...)
{
    static char line[1200];
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(line, sizeof line - 1, format, arguments);
    va_end(arguments);
    if (length < 0)
        length = 0;
    if ((size_t)length > sizeof line - 2)
        length = sizeof line - 2;
    line[length] = '\n';
    line[length + 1] = '\0';
    semihost(SYS_WRITE0, line);
}

void bench_finish(int passed)
{
    bench_report("result: %s", passed ? "PASS" : "FAIL");
    semihost(SYS_EXIT, (const void *)(uintptr_t)(passed ? EXIT_APPLICATION_DONE : EXIT_RUNTIME_ERROR));
    for (;;) {
    }
}

void bench_finish_with(const char *line)
{
    bench_report("%s", line);
    semihost(SYS_EXIT, (const void *)(uintptr_t)EXIT_RUNTIME_ERROR);
    for (;;) {
    }
}
