/* An AT command driver for the modem's UART, in the way a careful host driver reads the module:
 * line by line, each command bounded by a time-out, its echo recognised and skipped, and
 * unsolicited result codes (URCs) taken out wherever they arrive between lines and handed to the
 * application. The module's data prompt "> " (no line end) and the raw data that follows a read
 * command's header line are read as such, not as lines. */
#ifndef AT_H
#define AT_H

#include <stddef.h>
#include <stdint.h>

#define AT_LINE_MAX 200
#define AT_RESPONSE_LINES 8

enum at_final {
    AT_OK,
    AT_ERROR,
    AT_CME_ERROR,       /* +CME ERROR: <code> */
    AT_CONNECT,         /* AT+QFUPL's invitation to send the file */
    AT_SEND_OK,
    AT_SEND_FAIL,
    AT_NO_CARRIER,
    AT_PROMPT,          /* "> ": the module waits for the data */
    AT_TIMEOUT,         /* no final result within the command's time */
};

/* What one command brought, in order: its echo (when echo is on), information lines, and the
 * final result; URCs are not here, they went to the handler. */
struct at_response {
    enum at_final final;
    int count;
    int dropped;        /* lines beyond AT_RESPONSE_LINES */
    char lines[AT_RESPONSE_LINES][AT_LINE_MAX];
};

/* Raw data announced by a header line "<header><length>" (AT+QSSLRECV, AT+QIRD): the next
 * <length> bytes are data, whatever they hold. */
struct at_data {
    const char *header;     /* e.g. "+QSSLRECV: " */
    uint8_t *buffer;
    size_t capacity;
    size_t length;          /* out: the bytes read */
    int announced;          /* out: the header came */
};

/* Called with every URC line, wherever it arrived. */
typedef void (*at_urc_handler)(const char *line);

void at_init(at_urc_handler handler);

/* Send "<command>\r" and read its answer up to the final result or the time-out. */
enum at_final at_command(const char *command, uint32_t timeout_ms, struct at_response *response);

/* The same for a command that asks for data: its answer may also be the prompt (AT_PROMPT). */
enum at_final at_command_for_data(const char *command, uint32_t timeout_ms, struct at_response *response);

/* The same, for a command whose answer carries raw data (see struct at_data). */
enum at_final at_command_reading(const char *command, uint32_t timeout_ms, struct at_response *response,
                                 struct at_data *data);

/* After AT_PROMPT or AT_CONNECT: send the data and read the rest of the command's answer; the
 * lines are added to the same response. */
enum at_final at_send_data(const char *command, const void *data, size_t length, uint32_t timeout_ms,
                           struct at_response *response);

/* Read lines (handing URCs over) until done() says so or the time is up; 1 when done. */
int at_wait_for(int (*done)(void), uint32_t timeout_ms);

/* A command sent when answers to earlier commands may still be on their way (they come in order,
 * before this one's): its answer starts with its echo or with a line starting with answer_starts;
 * the lines before are dropped and counted. */
enum at_final at_command_after_stale(const char *command, const char *answer_starts, uint32_t timeout_ms,
                                     struct at_response *response);
int at_stale_lines(void);

/* Lines that came outside any command and were no URC. */
int at_unexpected_lines(void);

#endif
