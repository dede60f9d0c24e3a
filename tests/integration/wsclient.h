/* A WebSocket client for the integration tests, on libwebsockets' client
 * side. Single-threaded: every call services the client's own lws context
 * until what it waits for happens or the timeout passes, so a test that
 * stops calling th_ws_recv() is a consumer that stopped reading. */
#ifndef SB_TEST_WSCLIENT_H
#define SB_TEST_WSCLIENT_H

#include <stddef.h>

struct th_ws;

/* Connect to ws://127.0.0.1:port/ws with subprotocol switchboard.v1 and
 * one extra header line ("cookie: ..." or "authorization: Bearer ...", or
 * NULL). NULL when the upgrade failed; `why` says why. */
struct th_ws *th_ws_connect(int port, const char *header, char *why, size_t whylen);
/* Send one text message; 0 when written. */
int th_ws_send(struct th_ws *c, const char *text);
/* The next message, malloc'd (the caller frees), or NULL after timeout_ms
 * or when the connection is closed. */
char *th_ws_recv(struct th_ws *c, int timeout_ms);
/* The next message of `type` ("event", "typing", ...), skipping others. */
char *th_ws_recv_type(struct th_ws *c, const char *type, int timeout_ms);
/* Service for timeout_ms without taking messages out of the queue. */
void th_ws_pump(struct th_ws *c, int timeout_ms);
/* The close code the server sent (0 while open or when it sent none), and
 * whether the connection is closed. */
int th_ws_close_code(const struct th_ws *c);
int th_ws_closed(const struct th_ws *c);
/* Close (if open) and free. */
void th_ws_free(struct th_ws **c);

#endif
