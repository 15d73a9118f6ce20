/* The AT driver; see at.h. */

#include "at.h"

#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "board.h"

static at_urc_handler urc_handler;
static int unexpected_lines, stale_lines;

/* The line being received; it survives a time-out, so no byte is lost between two reads. */
static char partial[AT_LINE_MAX];
static size_t partial_length;
static int partial_truncated;

/* Lines the module sends unasked (EC200x AT commands manual, TCP/IP and SSL notes). A line
 * that starts with the running command's own prefix is its answer instead (AT+CPIN? answers
 * "+CPIN: READY" as the boot URC does). */
static const char *const urc_prefixes[] = {
    "RDY", "+CPIN:", "+QUSIM:", "+QIND:", "+CFUN:", "POWERED DOWN",
    "+QIOPEN:", "+QIURC:", "+QSSLOPEN:", "+QSSLURC:", "+CGEV:", "+CTZE:",
};

static int starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

void at_init(at_urc_handler handler)
{
    urc_handler = handler;
}

int at_unexpected_lines(void)
{
    return unexpected_lines;
}

static int is_urc(const char *line, const char *own_prefix)
{
    if (own_prefix[0] && starts_with(line, own_prefix))
        return 0;
    for (size_t i = 0; i < sizeof urc_prefixes / sizeof urc_prefixes[0]; i++)
        if (starts_with(line, urc_prefixes[i]))
            return 1;
    return 0;
}

static int final_of(const char *line, enum at_final *final)
{
    static const struct {
        const char *text;
        int whole;              /* the line is exactly this, not just starts with it */
        enum at_final final;
    } finals[] = {
        {"OK", 1, AT_OK},
        {"ERROR", 1, AT_ERROR},
        {"+CME ERROR:", 0, AT_CME_ERROR},
        {"+CMS ERROR:", 0, AT_CME_ERROR},
        {"CONNECT", 0, AT_CONNECT},
        {"SEND OK", 1, AT_SEND_OK},
        {"SEND FAIL", 1, AT_SEND_FAIL},
        {"NO CARRIER", 1, AT_NO_CARRIER},
    };
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++) {
        if (finals[i].whole ? strcmp(line, finals[i].text) == 0 : starts_with(line, finals[i].text)) {
            *final = finals[i].final;
            return 1;
        }
    }
    return 0;
}

/* "+NAME:" for "AT+NAME=...", "AT+NAME?" or "AT+NAME"; "" for basic commands (ATE0, ATI). */
static void own_prefix_of(const char *command, char *prefix, size_t capacity)
{
    prefix[0] = '\0';
    if (!command || strncmp(command, "AT+", 3) != 0)
        return;
    size_t length = strcspn(command + 2, "=?");
    if (length + 2 > capacity)
        return;
    memcpy(prefix, command + 2, length);
    prefix[length] = ':';
    prefix[length + 1] = '\0';
}

static int next_byte(uint32_t deadline)
{
    for (;;) {
        int byte = modem_read_byte();
        if (byte >= 0)
            return byte;
        if (time_reached(deadline))
            return -1;
        wait_for_interrupt();
    }
}

enum read_result { READ_LINE, READ_PROMPT, READ_TIMEOUT };

/* The next line without its line end (CR LF; stray CRs around it are dropped), or the prompt
 * when one is wanted: "> " at the start of a line. */
static enum read_result read_line(uint32_t deadline, int prompt_wanted, char *line)
{
    for (;;) {
        int byte = next_byte(deadline);
        if (byte < 0)
            return READ_TIMEOUT;
        if (byte == '\n') {
            while (partial_length && partial[partial_length - 1] == '\r')
                partial_length--;
            memcpy(line, partial, partial_length);
            line[partial_length] = '\0';
            if (partial_truncated)
                bench_report("note: a line longer than %d bytes was cut", AT_LINE_MAX - 1);
            partial_length = 0;
            partial_truncated = 0;
            return READ_LINE;
        }
        if (byte == '\r' && partial_length == 0)
            continue;
        if (prompt_wanted && byte == ' ' && partial_length == 1 && partial[0] == '>') {
            partial_length = 0;
            return READ_PROMPT;
        }
        if (partial_length < AT_LINE_MAX - 1)
            partial[partial_length++] = (char)byte;
        else
            partial_truncated = 1;
    }
}

static size_t read_raw(uint8_t *buffer, size_t length, uint32_t deadline)
{
    size_t got = 0;
    while (got < length) {
        int byte = next_byte(deadline);
        if (byte < 0)
            break;
        buffer[got++] = (uint8_t)byte;
    }
    return got;
}

static void keep(struct at_response *response, const char *line)
{
    if (response->count < AT_RESPONSE_LINES) {
        strncpy(response->lines[response->count], line, AT_LINE_MAX - 1);
        response->lines[response->count][AT_LINE_MAX - 1] = '\0';
        response->count++;
    } else {
        response->dropped++;
    }
}

/* Read the answer to command up to its final result. With answer_starts, lines before the echo
 * or a line starting so are answers to earlier commands, and are dropped. */
static enum at_final collect(const char *command, uint32_t timeout_ms, int prompt_wanted,
                             struct at_response *response, struct at_data *data, const char *answer_starts)
{
    char prefix[32], line[AT_LINE_MAX];
    own_prefix_of(command, prefix, sizeof prefix);
    uint32_t deadline = millis() + timeout_ms;
    int echo_possible = response->count == 0;
    for (;;) {
        enum read_result read = read_line(deadline, prompt_wanted, line);
        if (read == READ_TIMEOUT) {
            keep(response, "<timeout>");
            return response->final = AT_TIMEOUT;
        }
        if (read == READ_PROMPT) {
            keep(response, ">");
            return response->final = AT_PROMPT;
        }
        if (line[0] == '\0')
            continue;
        if (is_urc(line, prefix)) {
            urc_handler(line);
            continue;
        }
        if (echo_possible && strcmp(line, command) == 0) {
            echo_possible = 0;
            answer_starts = NULL;
            keep(response, line);
            continue;
        }
        if (answer_starts) {
            if (strncmp(line, answer_starts, strlen(answer_starts)) != 0) {
                stale_lines++;
                bench_report("stale: %s", line);
                continue;
            }
            answer_starts = NULL;
        }
        echo_possible = 0;
        keep(response, line);
        enum at_final final;
        if (final_of(line, &final))
            return response->final = final;
        if (data && starts_with(line, data->header)) {
            long announced = strtol(line + strlen(data->header), NULL, 10);
            data->announced = 1;
            if (announced < 0 || (size_t)announced > data->capacity - data->length) {
                keep(response, "<more data than asked for>");
                return response->final = AT_ERROR;
            }
            size_t got = read_raw(data->buffer + data->length, (size_t)announced, deadline);
            data->length += got;
            if (got < (size_t)announced) {
                keep(response, "<timeout in data>");
                return response->final = AT_TIMEOUT;
            }
            if (announced > 0)
                keep(response, "<data>");
        }
    }
}

static void send_line(const char *command)
{
    modem_write(command, strlen(command));
    modem_write("\r", 1);   /* S3, the command line's end (V.250) */
}

static void reset(struct at_response *response)
{
    response->final = AT_TIMEOUT;
    response->count = 0;
    response->dropped = 0;
}

enum at_final at_command(const char *command, uint32_t timeout_ms, struct at_response *response)
{
    reset(response);
    send_line(command);
    return collect(command, timeout_ms, 0, response, NULL, NULL);
}

enum at_final at_command_for_data(const char *command, uint32_t timeout_ms, struct at_response *response)
{
    reset(response);
    send_line(command);
    return collect(command, timeout_ms, 1, response, NULL, NULL);
}

enum at_final at_command_reading(const char *command, uint32_t timeout_ms, struct at_response *response,
                                 struct at_data *data)
{
    reset(response);
    data->length = 0;
    data->announced = 0;
    send_line(command);
    return collect(command, timeout_ms, 0, response, data, NULL);
}

enum at_final at_send_data(const char *command, const void *data, size_t length, uint32_t timeout_ms,
                           struct at_response *response)
{
    modem_write(data, length);
    return collect(command, timeout_ms, 0, response, NULL, NULL);
}

int at_wait_for(int (*done)(void), uint32_t timeout_ms)
{
    char line[AT_LINE_MAX];
    uint32_t deadline = millis() + timeout_ms;
    while (!done()) {
        if (read_line(deadline, 0, line) == READ_TIMEOUT)
            return done();
        if (line[0] == '\0')
            continue;
        if (is_urc(line, "")) {
            urc_handler(line);
        } else {
            unexpected_lines++;
            bench_report("unexpected: %s", line);
        }
    }
    return 1;
}

enum at_final at_command_after_stale(const char *command, const char *answer_starts, uint32_t timeout_ms,
                                     struct at_response *response)
{
    reset(response);
    send_line(command);
    return collect(command, timeout_ms, 0, response, NULL, answer_starts);
}

int at_stale_lines(void)
{
    return stale_lines;
}
