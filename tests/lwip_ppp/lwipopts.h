/* lwIP options for the PPPoS test client (tests/lwip_ppp/ppp_client.c): no OS, IPv4, DNS, TCP,
 * TLS through altcp with the system's Mbed TLS, PPP over a serial port with PAP and CHAP. */
#ifndef ECEMU_LWIPOPTS_H
#define ECEMU_LWIPOPTS_H

#define NO_SYS 1
#define SYS_LIGHTWEIGHT_PROT 0
#define LWIP_SOCKET 0
#define LWIP_NETCONN 0
#define MEM_LIBC_MALLOC 1
#define MEMP_MEM_MALLOC 1
#define MEM_ALIGNMENT 8
#define LWIP_IPV4 1
#define LWIP_IPV6 0
#define LWIP_UDP 1
#define LWIP_TCP 1
#define LWIP_DNS 1
#define DNS_MAX_SERVERS 2
#define TCP_MSS 1400
#define TCP_WND (32 * TCP_MSS)
#define TCP_SND_BUF (16 * TCP_MSS)
#define TCP_SND_QUEUELEN (4 * TCP_SND_BUF / TCP_MSS)
#define MEMP_NUM_TCP_SEG 256
#define PBUF_POOL_SIZE 128
#define LWIP_WND_SCALE 1
#define TCP_RCV_SCALE 2
#define LWIP_STATS 0
#define LWIP_RAND() ((u32_t)random())

#define PPP_SUPPORT 1
#define PPPOS_SUPPORT 1
#define PPP_IPV4_SUPPORT 1
#define PAP_SUPPORT 1
#define CHAP_SUPPORT 1
#define PPP_NOTIFY_PHASE 1
#define LCP_ECHOINTERVAL 2

#define LWIP_ALTCP 1
#define LWIP_ALTCP_TLS 1
#define LWIP_ALTCP_TLS_MBEDTLS 1
#define ALTCP_MBEDTLS_DEBUG LWIP_DBG_OFF

#endif
