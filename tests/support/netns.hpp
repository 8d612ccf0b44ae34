// Test support: a veth pair whose inner end lives in a network namespace the
// test made itself. The outer end stays in the test's namespace, up, with no
// address, for a capture back-end to open; frames injected on the inner end
// (tcpreplay, a generator, a raw socket) arrive on the outer end's RX
// queues. Everything is removed at scope exit. Needs root (CAP_NET_ADMIN);
// create() says why when it cannot, so the test can GTEST_SKIP with it.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

namespace weir::test {

/// Runs a shell command; returns its exit status (-1 if it did not run).
inline int sh(const std::string& cmd)
{
    const int rc = std::system(cmd.c_str());
    if (rc == -1 || !WIFEXITED(rc))
        return -1;
    return WEXITSTATUS(rc);
}

/// True when `tool` is on the PATH.
inline bool have_tool(const std::string& tool)
{
    return sh("command -v " + tool + " >/dev/null 2>&1") == 0;
}

class VethPair {
public:
    /// tag: a short unique word per test (names are "<tag>o", "<tag>i" and
    /// namespace "<tag>ns"; keep tag <= 10 characters). queues: RX/TX queues
    /// per end. Leftovers from an earlier crashed run are removed first.
    static std::unique_ptr<VethPair> create(const std::string& tag, unsigned queues, std::string* why)
    {
        if (geteuid() != 0) {
            *why = "needs root (CAP_NET_ADMIN) to create a network namespace and a veth pair";
            return nullptr;
        }
        if (!have_tool("ip")) {
            *why = "iproute2 (ip) not installed";
            return nullptr;
        }
        std::unique_ptr<VethPair> v(new VethPair(tag));
        sh("ip link del " + v->outer + " >/dev/null 2>&1");
        sh("ip netns del " + v->ns + " >/dev/null 2>&1");
        const std::string q = std::to_string(queues);
        if (sh("ip netns add " + v->ns) != 0 ||
            sh("ip link add " + v->outer + " numrxqueues " + q + " numtxqueues " + q + " type veth peer name " +
               v->inner + " numrxqueues " + q + " numtxqueues " + q) != 0 ||
            sh("ip link set " + v->inner + " netns " + v->ns) != 0 ||
            sh("ip link set " + v->outer + " up") != 0 ||
            sh("ip netns exec " + v->ns + " ip link set " + v->inner + " up") != 0 ||
            sh("ip netns exec " + v->ns + " ip link set lo up") != 0) {
            *why = "could not create veth pair " + v->outer + "/" + v->inner + " in namespace " + v->ns;
            return nullptr;
        }
        // No IPv6 autoconfiguration chatter on either end: tests count frames.
        sh("sysctl -qw net.ipv6.conf." + v->outer + ".disable_ipv6=1 >/dev/null 2>&1");
        sh("ip netns exec " + v->ns + " sysctl -qw net.ipv6.conf." + v->inner + ".disable_ipv6=1 >/dev/null 2>&1");
        v->ok_ = true;
        return v;
    }

    ~VethPair()
    {
        sh("ip link del " + outer + " >/dev/null 2>&1");
        sh("ip netns del " + ns + " >/dev/null 2>&1");
    }

    /// Runs a shell command inside the namespace.
    int in_ns(const std::string& cmd) const { return sh("ip netns exec " + ns + " " + cmd); }

    std::string ns, outer, inner;

private:
    explicit VethPair(const std::string& tag) : ns(tag + "ns"), outer(tag + "o"), inner(tag + "i") {}
    bool ok_ = false;
};

} // namespace weir::test
