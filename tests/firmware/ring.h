/* A ring buffer for one writer (the UART's interrupt handler) and one reader (the main loop).
 * Each side moves only its own index, so neither needs a lock; the indexes run freely and are
 * reduced modulo the size, a power of two, when used. */
#ifndef RING_H
#define RING_H

#include <stdint.h>

#define RING_SIZE 2048u     /* more than the longest answer the driver asks for (AT+QSSLRECV of 1500) */

struct ring {
    volatile uint32_t head;         /* written by the interrupt handler */
    volatile uint32_t tail;         /* written by the reader */
    uint32_t high_water;
    uint8_t data[RING_SIZE];
};

static inline uint32_t ring_count(const struct ring *ring)
{
    return ring->head - ring->tail;
}

static inline int ring_empty(const struct ring *ring)
{
    return ring->head == ring->tail;
}

/* From the interrupt handler: 0 when the ring is full (the byte is lost and counted by the caller). */
static inline int ring_put(struct ring *ring, uint8_t byte)
{
    uint32_t head = ring->head;
    uint32_t count = head - ring->tail;
    if (count >= RING_SIZE)
        return 0;
    ring->data[head & (RING_SIZE - 1u)] = byte;
    __asm volatile("" ::: "memory");    /* the byte is stored before the reader can see it */
    ring->head = head + 1u;
    if (count + 1u > ring->high_water)
        ring->high_water = count + 1u;
    return 1;
}

/* From the main loop: the oldest byte, or -1 when none is waiting. */
static inline int ring_get(struct ring *ring)
{
    uint32_t tail = ring->tail;
    if (ring->head == tail)
        return -1;
    uint8_t byte = ring->data[tail & (RING_SIZE - 1u)];
    __asm volatile("" ::: "memory");    /* the byte is read before its slot is given back */
    ring->tail = tail + 1u;
    return byte;
}

#endif
