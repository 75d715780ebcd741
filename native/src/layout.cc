// The shared headers of the BPF program families, compiled in user space too: their static asserts
// then hold for this compiler as well as for clang -target bpf, and a header that only compiles with
// vmlinux.h fails the addon build. (The TypeScript codecs are checked against BTF by
// test/datapath/btfAlignment.test.ts.)

#include <cstddef>

#include "skein_flow.h"
#include "skein_lb.h"
#include "skein_policy.h"

static_assert(offsetof(struct skein_lb_revnat_key, addr) == 8, "revnat key: address after the cookie");
static_assert(offsetof(struct skein_flow_event, sport) == 64, "flow event: ports after the three addresses");
static_assert(offsetof(struct skein_policy_key, ifindex) == 4, "policy key: the LPM data starts after prefixlen");
static_assert(offsetof(struct skein_ct_key, ifindex) == 36, "ct key: the endpoint after the tuple");
