/*
 * The inbound preamble's fixed part, as read by accept(): judged here on
 * plain bytes so that it can be tested and fuzzed apart from the hook.
 */
#include <errno.h>

#include "wire.h"

int preamble_check(const struct ldm_preamble *pre)
{
	/* id_len bounds the second read into a LDM_PEER_ID_MAX buffer. */
	if (pre->magic != LDM_PREAMBLE_MAGIC || pre->version != LDM_PROTO_VERSION ||
	    pre->id_len > LDM_PEER_ID_MAX) {
		return -EPROTO;
	}
	return 0;
}
