/*
 * Control-socket protocol between ldmeshctl and ldmeshd.
 *
 * The client connects to <runtime_dir>/ctl.sock (mode 0600), writes one
 * request line and reads the answer until end-of-file:
 *
 *   request  = "LDMCTL1 " format " " verb *(" " arg) "\n"
 *   format   = "text" | "json"
 *   answer   = ("OK\n" body) | ("ERR " message "\n")
 *
 * A request longer than LDM_CTL_MAX_REQUEST, without its newline, with a
 * wrong prefix or an unknown verb gets an ERR answer and the connection is
 * closed; the daemon keeps serving.  Verbs: status, conns, stats, reload,
 * drain [timeout_s], check, policy-check.  Bodies in json are one JSON value.
 *
 * check answers with its verdict first, which ldmeshctl turns into its exit
 * status: the text body starts with "problems", spaces and the count (0
 * when all is well), the json one with {"ok":true or {"ok":false.
 */
#ifndef LDMESH_CTL_H
#define LDMESH_CTL_H

#define LDM_CTL_PREFIX "LDMCTL1"
#define LDM_CTL_MAX_REQUEST 4096

#endif
