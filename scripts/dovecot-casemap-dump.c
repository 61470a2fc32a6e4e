/*
 * Dumps what Dovecot's uni_utf8_to_decomposed_titlecase() (the i;unicode-casemap
 * normaliser, lib/unichar.c) does to every Unicode code point, one line per
 * changed code point: "CP OUT1 OUT2 ..." in hex. src/mailstore/unicode-casemap-table.ts
 * is made from its output (Hangul syllables left out):
 *
 *   gcc -O2 -o /tmp/dump scripts/dovecot-casemap-dump.c -L/usr/lib/dovecot -ldovecot \
 *       -Wl,-rpath,/usr/lib/dovecot && /tmp/dump > /tmp/map.txt
 *
 * Only the public libdovecot entry points are declared here (no Dovecot headers needed).
 */
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
typedef struct pool *pool_t;
typedef struct buffer { const void *data; const size_t used; void *priv[5]; } buffer_t;
extern pool_t default_pool;
buffer_t *buffer_create_dynamic(pool_t pool, size_t init_size);
void buffer_set_used_size(buffer_t *buf, size_t used_size);
int uni_utf8_to_decomposed_titlecase(const void *input, size_t size, buffer_t *output);
static int enc(uint32_t c, unsigned char *o) {
  if (c < 0x80) { o[0]=c; return 1; }
  if (c < 0x800) { o[0]=0xc0|(c>>6); o[1]=0x80|(c&0x3f); return 2; }
  if (c < 0x10000) { o[0]=0xe0|(c>>12); o[1]=0x80|((c>>6)&0x3f); o[2]=0x80|(c&0x3f); return 3; }
  o[0]=0xf0|(c>>18); o[1]=0x80|((c>>12)&0x3f); o[2]=0x80|((c>>6)&0x3f); o[3]=0x80|(c&0x3f); return 4;
}
int main(void) {
  buffer_t *b = buffer_create_dynamic(default_pool, 64);
  unsigned char in[4];
  for (uint32_t c = 0; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    int n = enc(c, in);
    buffer_set_used_size(b, 0);
    uni_utf8_to_decomposed_titlecase(in, n, b);
    if (b->used == (size_t)n && __builtin_memcmp(b->data, in, n) == 0) continue;
    printf("%x", c);
    const unsigned char *d = b->data; size_t i = 0;
    while (i < b->used) {
      uint32_t v; unsigned char x = d[i];
      if (x < 0x80) { v = x; i += 1; }
      else if (x < 0xe0) { v = ((x&0x1f)<<6)|(d[i+1]&0x3f); i += 2; }
      else if (x < 0xf0) { v = ((x&0x0f)<<12)|((d[i+1]&0x3f)<<6)|(d[i+2]&0x3f); i += 3; }
      else { v = ((x&0x07)<<18)|((d[i+1]&0x3f)<<12)|((d[i+2]&0x3f)<<6)|(d[i+3]&0x3f); i += 4; }
      printf(" %x", v);
    }
    printf("\n");
  }
  return 0;
}
