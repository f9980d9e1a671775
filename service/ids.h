/* Object ids: a type prefix and 24 random characters, e.g. job_3kq…; and the
 * random bytes behind ids and API keys (getrandom, the kernel's CSPRNG). */
#ifndef RF_IDS_H
#define RF_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define RF_ID_RANDOM_LEN 24
#define RF_ID_MAX 40

int rf_random_bytes(void *buf, size_t n);
/* n characters of [0-9a-z], uniformly drawn, then a NUL (out holds n+1). */
int rf_random_alnum(char *out, size_t n);
/* Writes prefix + "_" + 24 characters of [0-9a-z] into out (RF_ID_MAX bytes). */
int rf_id_new(const char *prefix, char out[RF_ID_MAX]);
/* True when s is prefix + "_" + 24 characters of [0-9a-z]. */
bool rf_id_valid(const char *prefix, const char *s);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void rf_hex(const unsigned char *in, size_t n, char *out);

#endif
