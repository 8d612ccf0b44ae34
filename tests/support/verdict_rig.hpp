// Shared pieces of the verdict map / verdict server tests: the skip rule,
// a map factory, a private temporary directory, a command runner and a
// ZMQ REQ client for the server's REP endpoint.
#pragma once

#include <weir/dataplane/verdict_map.hpp>

#include <gtest/gtest.h>
#include <zmq.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace weir::test {

// Skips the test unless a VerdictMap can be made here.
#define NEED_VERDICT_MAPS()                                                                    \
    do {                                                                                       \
        if (!weir::dataplane::verdicts_supported())                                            \
            GTEST_SKIP() << "built without libbpf";                                            \
        if (geteuid() != 0)                                                                    \
            GTEST_SKIP() << "needs root (CAP_BPF) to create BPF maps";                         \
    } while (0)

inline weir::dataplane::VerdictMap make_map(uint32_t max_flows, uint32_t max_subnets = 64, std::string pin_dir = {})
{
    weir::dataplane::VerdictMapOptions o;
    o.max_flows = max_flows;
    o.max_subnets = max_subnets;
    o.pin_dir = std::move(pin_dir);
    auto m = weir::dataplane::VerdictMap::create(o);
    if (!m.ok())
        throw std::runtime_error(m.error().message());
    return std::move(*m);
}

// A directory under /tmp removed with its contents; mode 0755 so that a
// child that became nobody can reach a socket inside.
struct TempDir {
    std::string path;
    explicit TempDir(const char* prefix = "wv-verdict")
    {
        std::string t = std::string("/tmp/") + prefix + "-XXXXXX";
        if (!mkdtemp(t.data()))
            throw std::runtime_error("mkdtemp");
        path = t;
        chmod(path.c_str(), 0755);
    }
    ~TempDir() { std::system(("rm -rf " + path).c_str()); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

// Runs a shell command; returns stdout and stderr together, the exit
// status in *status (-1 when it did not exit normally).
inline std::string run_command(const std::string& cmd, int* status)
{
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) {
        *status = -1;
        return out;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        out.append(buf, n);
    const int rc = pclose(p);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return out;
}

// A ZMQ REQ socket connected to a verdict server's REP endpoint: one
// message out, one reply in (5 s receive timeout, no linger).
class ZmqReq {
public:
    explicit ZmqReq(const std::string& endpoint)
        : ctx_(zmq_ctx_new()), req_(zmq_socket(ctx_, ZMQ_REQ))
    {
        int timeout = 5000, linger = 0;
        zmq_setsockopt(req_, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
        zmq_setsockopt(req_, ZMQ_LINGER, &linger, sizeof(linger));
        connected_ = zmq_connect(req_, endpoint.c_str()) == 0;
    }
    ~ZmqReq()
    {
        zmq_close(req_);
        zmq_ctx_term(ctx_);
    }
    ZmqReq(const ZmqReq&) = delete;
    ZmqReq& operator=(const ZmqReq&) = delete;

    [[nodiscard]] bool connected() const { return connected_; }

    // The reply to s; "" when none came within the timeout.
    std::string ask(const std::string& s)
    {
        zmq_send(req_, s.data(), s.size(), 0);
        char buf[65536];
        const int n = zmq_recv(req_, buf, sizeof(buf), 0);
        if (n < 0)
            return {};
        return std::string(buf, static_cast<size_t>(std::min<int>(n, sizeof(buf))));
    }

private:
    void* ctx_;
    void* req_;
    bool connected_ = false;
};

}  // namespace weir::test
