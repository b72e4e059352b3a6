/*
 * Protocol switches an allowed HTTP/1.1 request may ask for, on ports where
 * requests are decided one by one.  An h2c upgrade would turn the rest of
 * the connection into HTTP/2 that the mesh does not read ("h2c
 * smuggling"), so the request goes on without it: the app answers in
 * HTTP/1.1 and every later request is still decided.  Other upgrades (a
 * WebSocket) carry the protocol the allowed request named, and pass.
 */
#ifndef LDMESH_UPGRADE_H
#define LDMESH_UPGRADE_H

#include <stddef.h>

#include "proto/http1.h"

/*
 * For the request head in s (between HTTP1_HEAD and the next feed): when
 * its Upgrade header lists h2c, writes into extra the Upgrade and
 * Connection lines to send instead ("Name: value\r\n" each, possibly
 * none): Upgrade without h2c, Connection without HTTP2-Settings and, when
 * no upgrade token is left, without Upgrade.  The caller then drops the
 * head's Upgrade, Connection and HTTP2-Settings headers and adds extra.
 * *all_gone is set when no upgrade token is left.  Returns 1 when h2c was
 * asked for, 0 when not (extra untouched), -ENOSPC when extra is too small.
 */
int upgrade_strip_h2c(const struct http1_stream *s, char *extra, size_t len, int *all_gone);

/* 1 when the request head in s lists h2c in its Upgrade header. */
int upgrade_asks_h2c(const struct http1_stream *s);

#endif
