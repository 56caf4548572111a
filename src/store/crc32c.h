/*
 * crc32c: CRC-32C (Castagnoli), the checksum of journal and snapshot
 * records. Pure; thread-safe after the first call (the table is built once,
 * before any thread starts, by crc32c_init).
 */
#ifndef SPOOL_CRC32C_H
#define SPOOL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

void crc32c_init(void);
/* Continues crc over data; start with crc = 0. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
