/*
 * The two TCP socket options Node has no API for, as a tiny N-API addon
 * (built by scripts/build-native.ts; loaded by src/server/tcp-tuning.ts):
 *
 *   setInt(fd, level, name, value) -> 0, or the errno of setsockopt(2)
 *   getInt(fd, level, name)        -> the option's value, or -errno
 *
 * Sealmail sets TCP_QUICKACK after each flush of its output, as Dovecot's
 * ostream-file.c does when it uncorks: a client that writes an APPEND
 * literal and its CRLF in two send()s with Nagle on waits for our ACK of
 * the literal, and Linux delays that ACK up to 40 ms on a connection in
 * "ping-pong" (interactive) mode.
 */
#include <errno.h>
#include <sys/socket.h>
#include <node_api.h>

static int int_args(napi_env env, napi_callback_info info, int *out, size_t want) {
  napi_value argv[4];
  size_t argc = 4;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return -1;
  for (size_t i = 0; i < want; i++) {
    if (napi_get_value_int32(env, argv[i], &out[i]) != napi_ok) return -1;
  }
  return 0;
}

static napi_value number(napi_env env, int v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

static napi_value set_int(napi_env env, napi_callback_info info) {
  int a[4];
  if (int_args(env, info, a, 4) != 0) return number(env, EINVAL);
  int value = a[3];
  return number(env, setsockopt(a[0], a[1], a[2], &value, sizeof value) == 0 ? 0 : errno);
}

static napi_value get_int(napi_env env, napi_callback_info info) {
  int a[3];
  if (int_args(env, info, a, 3) != 0) return number(env, -EINVAL);
  int value = 0;
  socklen_t len = sizeof value;
  return number(env, getsockopt(a[0], a[1], a[2], &value, &len) == 0 ? value : -errno);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "setInt", NAPI_AUTO_LENGTH, set_int, NULL, &fn);
  napi_set_named_property(env, exports, "setInt", fn);
  napi_create_function(env, "getInt", NAPI_AUTO_LENGTH, get_int, NULL, &fn);
  napi_set_named_property(env, exports, "getInt", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
