/* skbdrop: packets the kernel dropped, by drop reason and network protocol.
 *
 * skb:kfree_skb fires when the kernel frees a packet it did not deliver, with the reason it gave (enum
 * skb_drop_reason, since v5.17: "net: skb: introduce kfree_skb_reason()"). Packets freed after normal
 * use fire skb:consume_skb instead (since v6.2, kfree_skb_reason(skb, SKB_CONSUMED) does too), so this
 * program runs for drops only, not for every packet. A tp_btf program: the packet and the reason are the
 * tracepoint's own arguments. */
#include "lmp.h"

/* (reason, protocol) pairs: about 130 core reasons plus subsystem ones, times five protocols. */
#define MAX_PAIRS 2048
/* Reasons 0 (NOT_DROPPED_YET) and 1 (CONSUMED) are not drops; a kernel that traced them here would
 * otherwise count every freed packet. */
#define FIRST_DROP_REASON 2

/* EtherTypes, in host order. skb->protocol is the packet's, 0 for packets built locally before their L3
 * header was set. */
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_IPV6 0x86DD

/* Protocols, in the order of the spec's `protocol` label values; any other EtherType is "other", so the
 * label stays bounded. */
#define PROTO_NONE 0
#define PROTO_IPV4 1
#define PROTO_IPV6 2
#define PROTO_ARP 3
#define PROTO_OTHER 4

struct drop_key {
    u32 reason; /* named at scrape time from the running kernel's own list (the symbolic decoder) */
    u32 protocol;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_PAIRS);
    __type(key, struct drop_key);
    __type(value, u64);
} skb_drops_total SEC(".maps");
LMP_OVERFLOW_COUNTER(skb_drops_total);

static __always_inline u32 protocol_of(u16 ethertype)
{
    switch (ethertype) {
    case 0:              return PROTO_NONE;
    case ETHERTYPE_IPV4: return PROTO_IPV4;
    case ETHERTYPE_IPV6: return PROTO_IPV6;
    case ETHERTYPE_ARP:  return PROTO_ARP;
    default:             return PROTO_OTHER;
    }
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
    if (reason < FIRST_DROP_REASON)
        return 0;
    struct drop_key key = {.reason = reason, .protocol = protocol_of(bpf_ntohs(skb->protocol))};
    LMP_ADD(skb_drops_total, &key, 1);
    return 0;
}
