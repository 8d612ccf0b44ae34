// EgressPort (AF_PACKET TX) on a veth pair: frames sent on the outer end
// arrive whole and in order on the inner end (read by a packet socket
// opened inside the pair's namespace); a frame over the MTU and a link that
// is down are counted errors, never a crash. Needs root.
#include <weir/dataplane/egress.hpp>

#include <netns.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

using weir::dataplane::EgressPort;
using weir::dataplane::EgressPortOptions;

namespace {

// A packet socket bound to `ifname` inside namespace `ns` (setns on a
// helper thread: the socket keeps its namespace when used from this one).
int open_reader(const std::string& ns, const std::string& ifname)
{
    int fd = -1;
    std::thread t([&] {
        const int nsfd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0)
            return;
        ::close(nsfd);
        const int s = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
        // Room for the whole test burst: the default buffer holds ~100 such frames.
        const int rcvbuf = 16 << 20;
        if (s >= 0)
            (void)::setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_ALL);
        sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
        if (s >= 0 && sll.sll_ifindex > 0 && ::bind(s, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) == 0)
            fd = s;
        else if (s >= 0)
            ::close(s);
    });
    t.join();
    return fd;
}

// Ethernet frame with a local experimental ethertype and a sequence number.
std::vector<uint8_t> frame(uint32_t seq, size_t len)
{
    std::vector<uint8_t> f(len, 0x5a);
    const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x0b}, src[6] = {0x02, 0, 0, 0, 0, 0x0a};
    std::memcpy(f.data(), dst, 6);
    std::memcpy(f.data() + 6, src, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    std::memcpy(f.data() + 14, &seq, 4);
    return f;
}

// Frames with our ethertype received within `ms`, in order.
std::vector<std::vector<uint8_t>> receive(int fd, size_t want, int ms)
{
    std::vector<std::vector<uint8_t>> got;
    uint8_t buf[65536];
    while (got.size() < want) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, ms) <= 0)
            break;
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n >= 18 && buf[12] == 0x88 && buf[13] == 0xb5)
            got.emplace_back(buf, buf + n);
    }
    return got;
}

// 200 frames of many sizes with one over the 1500 MTU among them (batch 64:
// three automatic flushes, then drain()): the 200 arrive whole and in
// order, the big one is a counted EMSGSIZE error; with the link down every
// frame is refused and counted, nothing blocks.
void sends_whole_frames_in_order(EgressPort& port, const std::string& outer, int rd)
{
    std::vector<std::vector<uint8_t>> frames;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < 200; ++i) {
        frames.push_back(frame(i, 60 + (i * 37) % 1400));
        bytes += frames.back().size();
    }
    frames.insert(frames.begin() + 100, frame(9999, 3000)); // over the 1500 MTU
    for (const auto& f : frames)
        port.send(f.data(), static_cast<uint32_t>(f.size()));
    port.drain(1000);

    const auto got = receive(rd, 200, 2000);
    ASSERT_EQ(got.size(), 200u);
    for (uint32_t i = 0; i < 200; ++i) {
        uint32_t seq;
        std::memcpy(&seq, got[i].data() + 14, 4);
        EXPECT_EQ(seq, i);
        EXPECT_EQ(got[i], frames[i < 100 ? i : i + 1]) << i;
    }
    auto c = port.counters();
    EXPECT_EQ(c.packets, 200u);
    EXPECT_EQ(c.bytes, bytes);
    EXPECT_EQ(c.errors, 1u);
    EXPECT_EQ(c.dropped, 0u);
    EXPECT_EQ(port.first_error(), EMSGSIZE);

    ASSERT_EQ(weir::test::sh("ip link set " + outer + " down"), 0);
    for (int i = 0; i < 10; ++i)
        port.send(frames[0].data(), static_cast<uint32_t>(frames[0].size()));
    port.drain(1000);
    c = port.counters();
    EXPECT_EQ(c.packets, 200u);
    EXPECT_EQ(c.errors + c.dropped, 11u);
}

} // namespace

TEST(EgressPort, MissingInterfaceIsAnError)
{
    auto p = EgressPort::open("wegnosuch0");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code.value(), ENODEV) << p.error().message();
    EXPECT_FALSE(EgressPort::open("", {}));
    EgressPortOptions o;
    o.batch = 0;
    EXPECT_FALSE(EgressPort::open("lo", o));
}

TEST(EgressPort, SendsWholeFramesInOrderAndCountsRefusedOnes)
{
    std::string why;
    auto v = weir::test::VethPair::create("wegept", 1, &why);
    if (!v)
        GTEST_SKIP() << why;
    const int rd = open_reader(v->ns, v->inner);
    ASSERT_GE(rd, 0) << "reader socket in " << v->ns;

    EgressPortOptions o;
    o.batch = 64; // 200 frames: three automatic flushes and one explicit
    auto p = EgressPort::open(v->outer, o);
    ASSERT_TRUE(p) << p.error().message();
    EgressPort& port = *p.value();
    EXPECT_NE(port.describe().find(v->outer), std::string::npos);

    sends_whole_frames_in_order(port, v->outer, rd);
    ::close(rd);
}

#ifdef WEIR_HAVE_AFXDP
// The same through AF_XDP TX (copy mode on veth): whole frames in order,
// the frame over the MTU a counted EMSGSIZE error (never on the ring), a
// downed link counted frame by frame.
TEST(EgressPortAfXdp, SendsWholeFramesInOrderAndCountsRefusedOnes)
{
    std::string why;
    auto v = weir::test::VethPair::create("wegepx", 1, &why);
    if (!v)
        GTEST_SKIP() << why;
    const int rd = open_reader(v->ns, v->inner);
    ASSERT_GE(rd, 0) << "reader socket in " << v->ns;

    EgressPortOptions o;
    o.batch = 64;
    o.tx = weir::dataplane::EgressTx::AfXdp;
    auto p = EgressPort::open(v->outer, o);
    if (!p && p.error().code.value() == EPERM)
        GTEST_SKIP() << p.error().message();
    ASSERT_TRUE(p) << p.error().message();
    EgressPort& port = *p.value();
    EXPECT_EQ(std::string(port.tx_path()).rfind("afxdp", 0), 0u) << port.tx_path();

    sends_whole_frames_in_order(port, v->outer, rd);
    ::close(rd);
}

// Live mode: more frames in one burst than the UMEM holds while the kernel
// completes none in between (no flush) are counted drops, never a wait;
// after the flush the completions are reaped and the port sends again.
TEST(EgressPortAfXdp, FullRingIsACountedDropAndCompletionsAreReaped)
{
    std::string why;
    auto v = weir::test::VethPair::create("wegepy", 1, &why);
    if (!v)
        GTEST_SKIP() << why;
    EgressPortOptions o;
    o.batch = 1024;  // no automatic flush within the burst
    o.tx = weir::dataplane::EgressTx::AfXdp;
    o.xdp_frames = 128;
    o.xdp_ring_size = 64;
    auto p = EgressPort::open(v->outer, o);
    ASSERT_TRUE(p) << p.error().message();
    EgressPort& port = *p.value();
    const auto f = frame(1, 100);
    // 64 descriptors fit the ring; room() pushes them and the rest waits.
    for (int i = 0; i < 1000; ++i)
        port.send(f.data(), static_cast<uint32_t>(f.size()));
    port.flush();
    auto c = port.counters();
    EXPECT_EQ(c.packets + c.dropped, 1000u);
    EXPECT_EQ(c.errors, 0u);
    // Completions reaped: another round of 2000 over many flushes sends every frame.
    for (int r = 0; r < 100; ++r) {
        for (int i = 0; i < 20; ++i)
            port.send(f.data(), static_cast<uint32_t>(f.size()));
        port.flush();
    }
    port.drain(1000);
    const auto c2 = port.counters();
    EXPECT_EQ(c2.packets - c.packets + c2.dropped - c.dropped, 2000u);
    EXPECT_EQ(c2.dropped, c.dropped) << "every frame sent once completions were reaped";
}

TEST(EgressPortAfXdp, BadQueueIsAClearErrorOrAnAfPacketFallback)
{
    std::string why;
    auto v = weir::test::VethPair::create("wegepz", 1, &why);
    if (!v)
        GTEST_SKIP() << why;
    EgressPortOptions o;
    o.tx = weir::dataplane::EgressTx::AfXdp;
    o.xdp_queue = 7;
    auto p = EgressPort::open(v->outer, o);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code.value(), EINVAL);
    EXPECT_NE(p.error().message().find("queue 7 out of range"), std::string::npos) << p.error().message();
    o.tx = weir::dataplane::EgressTx::Auto;
    auto a = EgressPort::open(v->outer, o);
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_STREQ(a.value()->tx_path(), "afpacket");
}
#endif
