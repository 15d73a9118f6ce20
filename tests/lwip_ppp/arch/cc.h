/* The platform of the lwIP test client: Linux, glibc. */
#ifndef ECEMU_ARCH_CC_H
#define ECEMU_ARCH_CC_H
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#define LWIP_TIMEVAL_PRIVATE 0
#define LWIP_PLATFORM_DIAG(x) do { printf x; fflush(stdout); } while (0)
#define LWIP_PLATFORM_ASSERT(x) do { fprintf(stderr, "lwIP assertion: %s\n", x); abort(); } while (0)
#endif
