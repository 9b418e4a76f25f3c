/* skbdrop: packets the kernel dropped, by drop reason and network protocol.
 *
 * skb:kfree_skb fires when the kernel frees a packet it did not deliver, with the reason it gave
 * (enum skb_drop_reason, since v5.17: "net: skb: introduce kfree_skb_reason()"). Packets freed after
 * normal use fire skb:consume_skb instead (since v6.2, kfree_skb_reason(skb, SKB_CONSUMED) does too),
 * so this program runs for drops only, not for every packet. */
#include "lmp.h"

/* (reason, protocol) pairs: about 130 core reasons plus subsystem ones, times five protocols. */
#define MAX_PAIRS 2048
/* Reasons 0 (NOT_DROPPED_YET) and 1 (CONSUMED) are not drops; a kernel that traced them here would
 * otherwise count every freed packet. */
#define FIRST_DROP_REASON 2

/* The tracepoint carries skb->protocol already in host order (ntohs in TP_fast_assign): the
 * EtherType of the packet, 0 for packets built locally before their L3 header was set. */
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_IPV6 0x86DD

/* Protocols, in the order of the spec's `protocol` label values; any other EtherType is "other", so
 * the label stays bounded. */
#define PROTO_NONE 0
#define PROTO_IPV4 1
#define PROTO_IPV6 2
#define PROTO_ARP 3
#define PROTO_OTHER 4

/* BCC builds `args` from the tracepoint's format, where `reason` has type enum skb_drop_reason; no
 * header BCC includes defines that enum, so the struct would not compile. Completing the enum here
 * gives it the size of an int, as in the kernel (size:4 in the format); only the value is read, and
 * it is named at scrape time from the running kernel's own list. */
enum skb_drop_reason { LMP_SKB_DROP_REASON_ANY };

struct drop_key {
    u32 reason;
    u32 protocol;
};

BPF_PERCPU_HASH(skb_drops_total, struct drop_key, u64, MAX_PAIRS);

static __always_inline u32 decode_protocol(u16 ethertype)
{
    switch (ethertype) {
    case 0:              return PROTO_NONE;
    case ETHERTYPE_IPV4: return PROTO_IPV4;
    case ETHERTYPE_IPV6: return PROTO_IPV6;
    case ETHERTYPE_ARP:  return PROTO_ARP;
    default:             return PROTO_OTHER;
    }
}

TRACEPOINT_PROBE(skb, kfree_skb)
{
    u32 reason = args->reason;
    if (reason < FIRST_DROP_REASON)
        return 0;
    struct drop_key key = {.reason = reason, .protocol = decode_protocol(args->protocol)};
    u64 zero = 0;
    u64 *drops = skb_drops_total.lookup_or_try_init(&key, &zero);
    if (drops)
        (*drops)++;
    else
        LMP_OVERFLOW(skb_drops_total);
    return 0;
}
