/* The session the firmware runs against the modem on UART0, step by step as an application on an
 * MCU would: find the module, set echo, bring up the data context (PDP), upload the CA
 * certificate, open a verified TLS connection and carry every byte value both ways through it,
 * do the same over a plain TCP connection, close everything. Each step's answer goes to the
 * report as it came (see README.md); the first step that goes wrong ends the session.
 *
 * Settings (QEMU's -semihosting-config arg= items): host=<IPv4 of the servers>, tls=<port of
 * the TLS echo server>, tcp=<port of the TCP echo server>, ca=<host file with the CA in PEM>. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at.h"
#include "bench.h"
#include "board.h"

/* How long each step may take. The documents give 300 ms for the configuration commands; the
 * floor of 5 s leaves room for a busy machine running both the MCU and the module. */
enum {
    QUICK_MS = 5000,
    SYNC_ATTEMPT_MS = 1000,
    SYNC_ATTEMPTS = 30,
    INIT_CHECKS = 10,
    INIT_WAIT_MS = 5000,            /* the phonebook is ready some seconds after power-on */
    PDP_ACTIVATE_MS = 150000,       /* AT+QIACT: up to 150 s on a network */
    PDP_DEACTIVATE_MS = 40000,      /* AT+QIDEACT: up to 40 s */
    OPEN_MS = 150000,               /* +QSSLOPEN / +QIOPEN: network time, plus the TLS handshake */
    SEND_MS = 10000,
    CLOSE_MS = 15000,               /* AT+QSSLCLOSE / AT+QICLOSE: their 10 s close time-out, forced after */
    UPLOAD_MS = 10000,
    DATA_WAIT_MS = 30000,           /* the echo of what was sent */
};

#define TLS_CONTEXT 1
#define TLS_CLIENT 1
#define TCP_SOCKET 0
#define PDP_CONTEXT 1
#define PAYLOAD_SIZE 256
#define MAX_SOCKETS 12

struct socket_events {
    int open_result;        /* the <err> of +QSSLOPEN/+QIOPEN; -1 until it came */
    int data_waiting;       /* a "recv" URC came since the last read */
    int closed;             /* the peer closed ("closed" URC) */
};

static struct socket_events tls_clients[MAX_SOCKETS], tcp_sockets[MAX_SOCKETS];
static struct socket_events *watched;
static int pdp_lost;
static int phonebook_ready;         /* "+QIND: PB DONE" came */
static struct at_response response;
static uint8_t certificate[4096];
static uint8_t payload[PAYLOAD_SIZE], echoed[PAYLOAD_SIZE];

/* "<n>,<m>..." into values; the count of numbers read. */
static int parse_numbers(const char *text, int *values, int count)
{
    int found = 0;
    while (found < count) {
        char *end;
        long value = strtol(text, &end, 10);
        if (end == text)
            break;
        values[found++] = (int)value;
        if (*end != ',')
            break;
        text = end + 1;
    }
    return found;
}

static struct socket_events *socket_of(struct socket_events *table, int id)
{
    return id >= 0 && id < MAX_SOCKETS ? &table[id] : NULL;
}

/* URCs: +QSSLOPEN/+QIOPEN: <id>,<err>; +QSSLURC/+QIURC: "recv",<id> or "closed",<id>;
 * +QIURC: "pdpdeact",<context>. The boot URCs need nothing. */
static void on_urc(const char *line)
{
    int values[2];
    struct socket_events *events = NULL;
    bench_report("urc: %s", line);
    if (strcmp(line, "+QIND: PB DONE") == 0)
        phonebook_ready = 1;
    if (strncmp(line, "+QSSLOPEN: ", 11) == 0 && parse_numbers(line + 11, values, 2) == 2) {
        if ((events = socket_of(tls_clients, values[0])))
            events->open_result = values[1];
    } else if (strncmp(line, "+QIOPEN: ", 9) == 0 && parse_numbers(line + 9, values, 2) == 2) {
        if ((events = socket_of(tcp_sockets, values[0])))
            events->open_result = values[1];
    } else {
        struct socket_events *table = NULL;
        const char *rest = NULL;
        if (strncmp(line, "+QSSLURC: ", 10) == 0) {
            table = tls_clients;
            rest = line + 10;
        } else if (strncmp(line, "+QIURC: ", 8) == 0) {
            table = tcp_sockets;
            rest = line + 8;
        }
        if (!rest)
            return;
        if (strncmp(rest, "\"recv\",", 7) == 0 && parse_numbers(rest + 7, values, 1) == 1) {
            if ((events = socket_of(table, values[0])))
                events->data_waiting = 1;
        } else if (strncmp(rest, "\"closed\",", 9) == 0 && parse_numbers(rest + 9, values, 1) == 1) {
            if ((events = socket_of(table, values[0])))
                events->closed = 1;
        } else if (strncmp(rest, "\"pdpdeact\",", 11) == 0) {
            pdp_lost = 1;
        }
    }
}

static int watched_opened(void)
{
    return watched->open_result >= 0;
}

static int watched_has_data(void)
{
    return watched->data_waiting || watched->closed || pdp_lost;
}

static const char *final_name(enum at_final final)
{
    static const char *const names[] = {
        [AT_OK] = "OK", [AT_ERROR] = "ERROR", [AT_CME_ERROR] = "+CME ERROR", [AT_CONNECT] = "CONNECT",
        [AT_SEND_OK] = "SEND OK", [AT_SEND_FAIL] = "SEND FAIL", [AT_NO_CARRIER] = "NO CARRIER",
        [AT_PROMPT] = "prompt", [AT_TIMEOUT] = "time-out",
    };
    return names[final];
}

/* "<label> => <line> | <line> | ...": what the command brought, in order. */
static void report_answer(const char *label)
{
    static char text[1000];
    size_t used = 0;
    text[0] = '\0';
    for (int i = 0; i < response.count; i++)
        used += (size_t)snprintf(text + used, used < sizeof text ? sizeof text - used : 0, "%s%s",
                                 i ? " | " : "", response.lines[i]);
    bench_report("%s => %s%s", label, text, response.dropped ? " | ..." : "");
}

static int fail(const char *step, const char *why)
{
    bench_report("failed: %s: %s", step, why);
    return 0;
}

/* Run one command and report its answer; 1 when it ended with the wanted final result. */
static int step(const char *command, uint32_t timeout_ms, enum at_final wanted)
{
    enum at_final final = at_command(command, timeout_ms, &response);
    report_answer(command);
    if (final != wanted)
        return fail(command, final_name(final));
    return 1;
}

static int stepf(uint32_t timeout_ms, enum at_final wanted, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int stepf(uint32_t timeout_ms, enum at_final wanted, const char *format, ...)
{
    char command[160];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(command, sizeof command, format, arguments);
    va_end(arguments);
    return step(command, timeout_ms, wanted);
}

/* +QINISTAT's value, or -1 when the answer has none. */
static int initialisation_status(void)
{
    for (int i = 0; i < response.count; i++)
        if (strncmp(response.lines[i], "+QINISTAT: ", 11) == 0)
            return atoi(response.lines[i] + 11);
    return -1;
}

static int phonebook_done(void)
{
    return phonebook_ready;
}

/* The module answers nothing until it is up, and the UART may be connected after the MCU starts:
 * AT until OK. Then wait until it has initialised its SIM, SMS and phonebook (AT+QINISTAT reads
 * 7): until then its boot URCs come, and with echo on one may cut into the echo of a command
 * being typed. The first AT+QINISTAT also passes over the late answers to the attempts the module
 * took in before it was up: they come, in order, before its own. */
static int find_module(void)
{
    int attempt = 0;
    while (at_command("AT", SYNC_ATTEMPT_MS, &response) != AT_OK)
        if (++attempt == SYNC_ATTEMPTS)
            return fail("AT", "the module never answered");
    bench_report("module: answers");
    enum at_final final = at_command_after_stale("AT+QINISTAT", "+QINISTAT:", QUICK_MS, &response);
    for (attempt = 0; attempt < INIT_CHECKS; attempt++) {
        if (final != AT_OK) {
            report_answer("AT+QINISTAT");
            return fail("AT+QINISTAT", final_name(final));
        }
        if (initialisation_status() == 7) {
            bench_report("module: initialised");
            return 1;
        }
        /* Not yet: its "+QIND: PB DONE" is still to come. */
        at_wait_for(phonebook_done, INIT_WAIT_MS);
        final = at_command("AT+QINISTAT", QUICK_MS, &response);
    }
    report_answer("AT+QINISTAT");
    return fail("AT+QINISTAT", "the module did not finish initialising");
}

static int set_echo(void)
{
    /* Echo is on after power-on: each command comes back before its answer. The driver runs
     * with echo off, as it sends binary data, but reads both. */
    return step("AT+CGMI", QUICK_MS, AT_OK) && step("ATE1", QUICK_MS, AT_OK) && step("AT", QUICK_MS, AT_OK)
        && step("ATE0", QUICK_MS, AT_OK) && step("AT", QUICK_MS, AT_OK)
        && step("AT+CMEE=1", QUICK_MS, AT_OK) && step("AT+CPIN?", QUICK_MS, AT_OK);
}

static int bring_up_data(void)
{
    return step("AT+QICSGP=1,1,\"UNINET\",\"\",\"\",1", QUICK_MS, AT_OK)
        && step("AT+QIACT=1", PDP_ACTIVATE_MS, AT_OK)
        && step("AT+QIACT?", QUICK_MS, AT_OK);
}

/* The FILE note's check: the data as big-endian 16-bit words XORed together, an odd last byte
 * being the high half of a last word. */
static unsigned upload_checksum(const uint8_t *data, size_t length)
{
    unsigned sum = 0;
    for (size_t i = 0; i < length; i += 2)
        sum ^= (unsigned)data[i] << 8 | (i + 1 < length ? data[i + 1] : 0u);
    return sum;
}

static int upload_ca(const char *path)
{
    long length = bench_read_file(path, certificate, sizeof certificate);
    if (length <= 0)
        return fail("ca", "cannot read the CA file");
    /* A file of the same name would make the upload fail (407): delete it first; on a module
     * without one this answers +CME ERROR: 405. */
    at_command("AT+QFDEL=\"ca.pem\"", QUICK_MS, &response);
    report_answer("AT+QFDEL=\"ca.pem\"");
    char command[64];
    snprintf(command, sizeof command, "AT+QFUPL=\"ca.pem\",%ld,10", length);
    if (at_command(command, QUICK_MS, &response) != AT_CONNECT) {
        report_answer(command);
        return fail(command, final_name(response.final));
    }
    enum at_final final = at_send_data(command, certificate, (size_t)length, UPLOAD_MS, &response);
    report_answer(command);
    if (final != AT_OK)
        return fail(command, final_name(final));
    char expected[40];
    snprintf(expected, sizeof expected, "+QFUPL: %ld,%x", length, upload_checksum(certificate, (size_t)length));
    for (int i = 0; i < response.count; i++)
        if (strcmp(response.lines[i], expected) == 0)
            return 1;
    return fail(command, "the size or checksum differs from what was sent");
}

static int wait_open(struct socket_events *events, const char *what)
{
    watched = events;
    if (!at_wait_for(watched_opened, OPEN_MS))
        return fail(what, "no URC");
    bench_report("%s: %d", what, events->open_result);
    return events->open_result == 0 ? 1 : fail(what, "the connection failed");
}

static int send_payload(const char *command, const uint8_t *data, size_t length)
{
    enum at_final final = at_command_for_data(command, QUICK_MS, &response);
    if (final != AT_PROMPT) {
        report_answer(command);
        return fail(command, final_name(final));
    }
    final = at_send_data(command, data, length, SEND_MS, &response);
    report_answer(command);
    return final == AT_SEND_OK ? 1 : fail(command, final_name(final));
}

/* Read until length bytes came back: AT+QSSLRECV / AT+QIRD until one reads 0, then wait for the
 * next "recv" URC. read_format takes the socket and the most to read. */
static int receive(struct socket_events *events, const char *read_format, int id, const char *header,
                   uint8_t *buffer, size_t length)
{
    size_t total = 0;
    uint32_t deadline = millis() + DATA_WAIT_MS;
    watched = events;
    while (total < length) {
        uint32_t left = time_reached(deadline) ? 0 : deadline - millis();
        if (!at_wait_for(watched_has_data, left))
            return fail(header, "no data came");
        if (events->closed || pdp_lost)
            return fail(header, "the connection closed before all the data came");
        events->data_waiting = 0;
        for (;;) {
            char command[48];
            snprintf(command, sizeof command, read_format, id, (unsigned)(length - total));
            struct at_data data = {header, buffer + total, length - total, 0, 0};
            enum at_final final = at_command_reading(command, QUICK_MS, &response, &data);
            report_answer(command);
            if (final != AT_OK || !data.announced)
                return fail(command, final != AT_OK ? final_name(final) : "no header line");
            total += data.length;
            if (data.length == 0 || total == length)
                break;
        }
    }
    return 1;
}

static void report_bytes(const char *label, const uint8_t *data, size_t length)
{
    static char hex[2 * PAYLOAD_SIZE + 1];
    for (size_t i = 0; i < length && i < PAYLOAD_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", data[i]);
    hex[2 * (length < PAYLOAD_SIZE ? length : PAYLOAD_SIZE)] = '\0';
    bench_report("%s: %s", label, hex);
}

/* The commands of a socket family, as format strings taking the socket's ID (and a length). */
struct socket_commands {
    const char *name;
    const char *send;           /* <id>,<length> */
    const char *read;           /* <id>,<most to read> */
    const char *read_header;
    const char *close;          /* <id> */
};

static const struct socket_commands tls_commands = {
    "tls", "AT+QSSLSEND=%d,%d", "AT+QSSLRECV=%d,%u", "+QSSLRECV: ", "AT+QSSLCLOSE=%d",
};
static const struct socket_commands tcp_commands = {
    "tcp", "AT+QISEND=%d,%d", "AT+QIRD=%d,%u", "+QIRD: ", "AT+QICLOSE=%d",
};

/* After the open command's OK: wait for the open URC, send the payload, read its echo back,
 * close. */
static int echo_through(const struct socket_commands *commands, struct socket_events *events, int id)
{
    char command[48], label[16];
    snprintf(label, sizeof label, "%s open", commands->name);
    if (!wait_open(events, label))
        return 0;
    snprintf(command, sizeof command, commands->send, id, PAYLOAD_SIZE);
    if (!send_payload(command, payload, PAYLOAD_SIZE)
        || !receive(events, commands->read, id, commands->read_header, echoed, PAYLOAD_SIZE))
        return 0;
    snprintf(label, sizeof label, "%s echo", commands->name);
    report_bytes(label, echoed, PAYLOAD_SIZE);
    return stepf(CLOSE_MS, AT_OK, commands->close, id);
}

static int tls_session(const char *host, const char *port)
{
    struct socket_events *client = &tls_clients[TLS_CLIENT];
    for (int i = 0; i < PAYLOAD_SIZE; i++)
        payload[i] = (uint8_t)i;
    client->open_result = -1;
    return stepf(QUICK_MS, AT_OK, "AT+QSSLCFG=\"sslversion\",%d,4", TLS_CONTEXT)
        && stepf(QUICK_MS, AT_OK, "AT+QSSLCFG=\"ciphersuite\",%d,0XFFFF", TLS_CONTEXT)
        && stepf(QUICK_MS, AT_OK, "AT+QSSLCFG=\"seclevel\",%d,1", TLS_CONTEXT)
        && stepf(QUICK_MS, AT_OK, "AT+QSSLCFG=\"cacert\",%d,\"UFS:ca.pem\"", TLS_CONTEXT)
        && stepf(QUICK_MS, AT_OK, "AT+QSSLOPEN=%d,%d,%d,\"%s\",%s,0", PDP_CONTEXT, TLS_CONTEXT, TLS_CLIENT,
                 host, port)
        && echo_through(&tls_commands, client, TLS_CLIENT);
}

static int tcp_session(const char *host, const char *port)
{
    struct socket_events *socket = &tcp_sockets[TCP_SOCKET];
    for (int i = 0; i < PAYLOAD_SIZE; i++)
        payload[i] = (uint8_t)(PAYLOAD_SIZE - 1 - i);
    socket->open_result = -1;
    return stepf(QUICK_MS, AT_OK, "AT+QIOPEN=%d,%d,\"TCP\",\"%s\",%s,0,0", PDP_CONTEXT, TCP_SOCKET, host, port)
        && echo_through(&tcp_commands, socket, TCP_SOCKET);
}

int main(void)
{
    static char host[40], tls_port[8], tcp_port[8], ca[256];
    board_init();
    at_init(on_urc);
    if (!bench_setting("host", host, sizeof host) || !bench_setting("tls", tls_port, sizeof tls_port)
        || !bench_setting("tcp", tcp_port, sizeof tcp_port) || !bench_setting("ca", ca, sizeof ca)) {
        fail("settings", "host=, tls=, tcp= and ca= are all needed");
        return 1;
    }
    int ok = find_module() && set_echo() && bring_up_data() && upload_ca(ca)
          && tls_session(host, tls_port) && tcp_session(host, tcp_port)
          && stepf(PDP_DEACTIVATE_MS, AT_OK, "AT+QIDEACT=%d", PDP_CONTEXT);
    struct uart_counters counters = modem_uart_counters();
    bench_report("uart: %lu lost, %lu line errors, %d unexpected lines",
                 (unsigned long)counters.ring_overflows, (unsigned long)counters.line_errors,
                 at_unexpected_lines());
    bench_report("ring buffer: at most %lu bytes waited", (unsigned long)counters.max_waiting);
    return ok ? 0 : 1;
}
