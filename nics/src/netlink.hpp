// A minimal netlink client for the requests weir::nics makes: RTM_GETLINK,
// RTM_NEWLINK and RTM_DELLINK (rtnetlink) and NETDEV_CMD_DEV_GET (generic
// netlink family "netdev"). Requests are "do" (not dump) requests answered
// by one message (a change with NLM_F_ACK by its acknowledgement); a
// receive timeout bounds every wait.
#pragma once

#include <weir/core/result.hpp>

#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace weir::nics::detail {

/// Builds one netlink message: header, fixed payload, attributes.
class NlMessage {
public:
    NlMessage(uint16_t type, uint16_t flags);
    void put(const void* data, size_t len); ///< fixed payload, padded to 4
    void attr(uint16_t type, const void* data, size_t len);
    void attr_u32(uint16_t type, uint32_t v) { attr(type, &v, sizeof v); }
    void attr_str(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
    /// Opens a nested attribute; what is added until nest_end(returned
    /// offset) is its payload.
    [[nodiscard]] size_t nest_begin(uint16_t type);
    void nest_end(size_t at);
    nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
    [[nodiscard]] const std::vector<uint8_t>& bytes() const { return buf_; }

private:
    std::vector<uint8_t> buf_;
};

/// Attributes in [data, data + len): calls f(type, payload, payload_len).
void for_each_attr(const uint8_t* data, size_t len,
                   const std::function<void(uint16_t, const uint8_t*, size_t)>& f);

template <typename T>
T attr_get(const uint8_t* p, size_t len)
{
    T v{};
    std::memcpy(&v, p, len < sizeof v ? len : sizeof v);
    return v;
}

class NlSocket {
public:
    static Result<NlSocket> open(int protocol, const std::string& context);
    NlSocket(NlSocket&& o) noexcept : fd_(o.fd_), seq_(o.seq_) { o.fd_ = -1; }
    NlSocket& operator=(NlSocket&&) = delete;
    ~NlSocket();

    /// Sends msg and waits for its answer: the reply message is handed to
    /// on_reply; an NLMSG_ERROR becomes an Error with `context`.
    Result<void> request(NlMessage& msg, const std::function<void(const nlmsghdr*)>& on_reply,
                         const std::string& context);

private:
    explicit NlSocket(int fd) : fd_(fd) {}
    int fd_ = -1;
    uint32_t seq_ = 1;
};

/// Numeric id of a generic netlink family; ENOENT if the kernel lacks it.
Result<uint16_t> genl_family_id(NlSocket& sock, const std::string& name);

} // namespace weir::nics::detail
