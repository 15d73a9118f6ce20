/*
 * A PPPoS host on lwIP, the way firmware runs it: dial the module on a serial port (ATD*99#), bring
 * PPP up (LCP, PAP/CHAP, IPCP with the peer's DNS servers), look a name up, open a TCP or TLS
 * connection to it, send a message and read the echo (or count a download), then close PPP and
 * wait for the module's NO CARRIER.
 *
 *   ppp_client --tty PATH --host NAME --port N [--tls CA.pem] [--message TEXT] [--download BYTES]
 *              [--dial STRING] [--hold-seconds S] [--no-close]
 *
 * Prints one line per step ("CONNECT", "PPP up ...", "DNS ...", "TCP connected", "ECHO ...",
 * "DOWNLOAD ...", "PPP down ...", "NO CARRIER") and exits 0 when every step passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "lwip/init.h"
#include "lwip/timeouts.h"
#include "lwip/dns.h"
#include "lwip/ip_addr.h"
#include "lwip/altcp.h"
#include "lwip/altcp_tcp.h"
#include "lwip/altcp_tls.h"
#include "netif/ppp/pppos.h"
#include "netif/ppp/ppp.h"
#include "mbedtls/ssl.h"

static int port_fd = -1;
static ppp_pcb *ppp;
static struct netif ppp_netif;
static const char *host = "localhost";
static int tcp_port;
static const char *ca_file;
static const char *message = "hello through PPP";
static long download;
static long received;
static char echo_buf[65536];
static int failed, ppp_up, ppp_closed, resolved, tcp_done;
static ip_addr_t server_addr;
static struct altcp_pcb *pcb;
static double started, download_started;

u32_t sys_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

u32_t sys_jiffies(void)
{
    return sys_now();
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void write_all(const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len) {
        ssize_t n = write(port_fd, p, len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                fd_set w;
                FD_ZERO(&w);
                FD_SET(port_fd, &w);
                select(port_fd + 1, NULL, &w, NULL, NULL);
                continue;
            }
            say("write failed: %s", strerror(errno));
            exit(2);
        }
        p += n;
        len -= (size_t)n;
    }
}

static u32_t ppp_output(ppp_pcb *p, u8_t *data, u32_t len, void *ctx)
{
    (void)p; (void)ctx;
    write_all(data, len);
    return len;
}

static void finish(int ok)
{
    if (!ok)
        failed = 1;
    tcp_done = 1;
}

static err_t on_recv(void *arg, struct altcp_pcb *conn, struct pbuf *p, err_t err)
{
    (void)arg;
    if (p == NULL || err != ERR_OK) {
        if (download) {
            double spent = seconds() - download_started;
            say("DOWNLOAD %ld bytes in %.3f s", received, spent);
            finish(received == download);
        } else {
            say("closed by the server after %ld bytes", received);
            finish(0);
        }
        altcp_close(conn);
        pcb = NULL;
        return ERR_OK;
    }
    for (struct pbuf *q = p; q; q = q->next) {
        if (!download && received + q->len < (long)sizeof echo_buf)
            memcpy(echo_buf + received, q->payload, q->len);
        received += q->len;
    }
    altcp_recved(conn, p->tot_len);
    pbuf_free(p);
    if (!download && received >= (long)strlen(message)) {
        echo_buf[received] = 0;
        say("ECHO %s", echo_buf);
        say("ROUND TRIP %.3f s", seconds() - download_started);
        finish(strcmp(echo_buf, message) == 0);
        altcp_close(conn);
        pcb = NULL;
    } else if (download && received >= download) {
        say("DOWNLOAD %ld bytes in %.3f s", received, seconds() - download_started);
        finish(1);
        altcp_close(conn);
        pcb = NULL;
    }
    return ERR_OK;
}

static void on_error(void *arg, err_t err)
{
    (void)arg;
    say("TCP error %d", err);
    pcb = NULL;
    finish(0);
}

static err_t on_connected(void *arg, struct altcp_pcb *conn, err_t err)
{
    (void)arg;
    if (err != ERR_OK) {
        say("TCP connect failed %d", err);
        finish(0);
        return err;
    }
    say("TCP connected");
    download_started = seconds();
    if (download) {
        char request[32];
        snprintf(request, sizeof request, "%ld\n", download);  /* the size to send, for a source server */
        altcp_write(conn, request, (u16_t)strlen(request), TCP_WRITE_FLAG_COPY);
        altcp_output(conn);
    } else {
        altcp_write(conn, message, (u16_t)strlen(message), TCP_WRITE_FLAG_COPY);
        altcp_output(conn);
    }
    return ERR_OK;
}

static void connect_server(void)
{
    if (ca_file) {
        static unsigned char ca[16384];
        FILE *f = fopen(ca_file, "rb");
        size_t n = f ? fread(ca, 1, sizeof ca - 1, f) : 0;
        if (f)
            fclose(f);
        ca[n] = 0;
        struct altcp_tls_config *config = altcp_tls_create_config_client(ca, n + 1);
        if (!config) {
            say("TLS configuration failed");
            finish(0);
            return;
        }
        pcb = altcp_tls_new(config, IPADDR_TYPE_V4);
        mbedtls_ssl_set_hostname(altcp_tls_context(pcb), host);
    } else {
        pcb = altcp_tcp_new_ip_type(IPADDR_TYPE_V4);
    }
    altcp_recv(pcb, on_recv);
    altcp_err(pcb, on_error);
    if (altcp_connect(pcb, &server_addr, (u16_t)tcp_port, on_connected) != ERR_OK) {
        say("TCP connect refused locally");
        finish(0);
    }
}

static void on_resolved(const char *name, const ip_addr_t *addr, void *arg)
{
    (void)arg;
    if (!addr) {
        say("DNS %s failed", name);
        finish(0);
        return;
    }
    server_addr = *addr;
    resolved = 1;
    say("DNS %s %s", name, ipaddr_ntoa(addr));
    connect_server();
}

static void ppp_status(ppp_pcb *p, int err, void *ctx)
{
    (void)ctx;
    if (err == PPPERR_NONE) {
        char address[16], peer[16], dns[16];
        (void)p;
        snprintf(address, sizeof address, "%s", ipaddr_ntoa(netif_ip_addr4(&ppp_netif)));
        snprintf(peer, sizeof peer, "%s", ipaddr_ntoa(netif_ip_gw4(&ppp_netif)));
        snprintf(dns, sizeof dns, "%s", ipaddr_ntoa(dns_getserver(0)));
        say("PPP up address %s peer %s dns %s", address, peer, dns);
        ppp_up = 1;
        ip_addr_t cached;
        err_t e = dns_gethostbyname(host, &cached, on_resolved, NULL);
        if (e == ERR_OK)
            on_resolved(host, &cached, NULL);
        else if (e != ERR_INPROGRESS) {
            say("DNS request failed %d", e);
            finish(0);
        }
        return;
    }
    say("PPP down %d", err);
    if (err != PPPERR_USER && !tcp_done)
        finish(0);
    ppp_closed = 1;
}

static int read_until(const char *wanted, double timeout)
{
    char buf[512];
    size_t have = 0;
    double end = seconds() + timeout;
    while (seconds() < end) {
        fd_set r;
        struct timeval tv = {0, 50000};
        FD_ZERO(&r);
        FD_SET(port_fd, &r);
        if (select(port_fd + 1, &r, NULL, NULL, &tv) <= 0)
            continue;
        ssize_t n = read(port_fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            continue;
        have += (size_t)n;
        buf[have] = 0;
        if (strstr(buf, wanted))
            return 1;
        if (have > sizeof buf / 2) {
            memmove(buf, buf + have / 2, have - have / 2);
            have -= have / 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *tty = NULL, *dial = "ATD*99#";
    double hold = 0;
    int close_ppp = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tty")) tty = argv[i + 1];
        else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) tcp_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tls")) ca_file = argv[i + 1];
        else if (!strcmp(argv[i], "--message")) message = argv[i + 1];
        else if (!strcmp(argv[i], "--download")) download = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--dial")) dial = argv[i + 1];
        else if (!strcmp(argv[i], "--hold-seconds")) hold = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--no-close")) close_ppp = atoi(argv[i + 1]) == 0;
    }
    if (!tty || !tcp_port) {
        fprintf(stderr, "usage: ppp_client --tty PATH --host NAME --port N [...]\n");
        return 2;
    }
    port_fd = open(tty, O_RDWR | O_NOCTTY);
    if (port_fd < 0) {
        say("open %s: %s", tty, strerror(errno));
        return 2;
    }
    struct termios t;
    if (tcgetattr(port_fd, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(port_fd, TCSANOW, &t);
    }
    srandom((unsigned)getpid());
    started = seconds();
    char line[128];
    snprintf(line, sizeof line, "%s\r", dial);
    write_all(line, strlen(line));
    if (!read_until("CONNECT", 30)) {
        say("no CONNECT");
        return 1;
    }
    say("CONNECT");
    fcntl(port_fd, F_SETFL, fcntl(port_fd, F_GETFL) | O_NONBLOCK);

    lwip_init();
    ppp = pppos_create(&ppp_netif, ppp_output, ppp_status, NULL);
    ppp_set_usepeerdns(ppp, 1);
    ppp_set_auth(ppp, PPPAUTHTYPE_ANY, "ecemu", "secret");
    ppp_set_default(ppp);
    ppp_connect(ppp, 0);

    static unsigned char tail[4096 + 16];
    size_t tail_len = 0;
    int no_carrier = 0;
    double deadline = seconds() + 90;
    double closing_at = 0;
    while (!ppp_closed && seconds() < deadline) {
        fd_set r;
        struct timeval tv = {0, 2000};
        FD_ZERO(&r);
        FD_SET(port_fd, &r);
        if (select(port_fd + 1, &r, NULL, NULL, &tv) > 0) {
            unsigned char buf[4096];
            ssize_t n;
            while ((n = read(port_fd, buf, sizeof buf)) > 0) {
                /* The module's NO CARRIER may come while PPP still runs here (the module ended the
                 * call): watch the stream for it, as a host watching DCD would. */
                size_t keep = tail_len > 16 ? 16 : tail_len;
                memmove(tail, tail + tail_len - keep, keep);
                size_t take = (size_t)n > sizeof tail - keep ? sizeof tail - keep : (size_t)n;
                memcpy(tail + keep, buf + n - take, take);
                tail_len = keep + take;
                if (memmem(tail, tail_len, "NO CARRIER", 10))
                    no_carrier = 1;
                pppos_input(ppp, buf, (int)n);
            }
        }
        sys_check_timeouts();
        if (tcp_done && closing_at == 0)
            closing_at = seconds() + hold;
        if (closing_at && seconds() >= closing_at && close_ppp) {
            ppp_close(ppp, 0);
            close_ppp = 0;
        }
    }
    if (!ppp_closed) {
        say("timed out");
        return 1;
    }
    fcntl(port_fd, F_SETFL, fcntl(port_fd, F_GETFL) & ~O_NONBLOCK);
    if (no_carrier || read_until("NO CARRIER", 15))
        say("NO CARRIER");
    else {
        say("no NO CARRIER");
        failed = 1;
    }
    return failed || !resolved ? 1 : 0;
}
