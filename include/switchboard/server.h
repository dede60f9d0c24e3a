/* The HTTP server: libwebsockets on one event-loop thread, routing requests
 * to handlers that run either on the loop or on the DB worker pool.
 *
 * sb_server_run() blocks until SIGTERM or SIGINT, then stops accepting,
 * finishes the requests in flight (up to server.drain_timeout seconds) and
 * returns SB_OK, so `switchboard serve` exits 0 on an orderly stop. */
#ifndef SB_SERVER_H
#define SB_SERVER_H

#include <stddef.h>

struct sb_config;

int sb_server_run(const struct sb_config *cfg, char *err, size_t errlen);

/* Split "ADDR:PORT" ("[::1]:8080" for IPv6) into its parts. */
int sb_listen_parse(const char *listen, char *addr, size_t addrlen, int *port_r, char *err,
                    size_t errlen);

#endif
