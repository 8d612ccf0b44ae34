// Minimal netlink client (see netlink.hpp).
#include "netlink.hpp"

#include <linux/genetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace weir::nics::detail {

namespace {
constexpr size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }
constexpr int kReplyTimeoutSec = 2;
} // namespace

NlMessage::NlMessage(uint16_t type, uint16_t flags) : buf_(NLMSG_HDRLEN, 0)
{
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = flags;
    hdr()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

void NlMessage::put(const void* data, size_t len)
{
    const size_t at = buf_.size();
    buf_.resize(at + align4(len), 0);
    std::memcpy(buf_.data() + at, data, len);
    hdr()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

void NlMessage::attr(uint16_t type, const void* data, size_t len)
{
    const size_t at = buf_.size();
    buf_.resize(at + align4(NLA_HDRLEN + len), 0);
    nlattr a{};
    a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    a.nla_type = type;
    std::memcpy(buf_.data() + at, &a, sizeof a);
    if (len)
        std::memcpy(buf_.data() + at + NLA_HDRLEN, data, len);
    hdr()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

size_t NlMessage::nest_begin(uint16_t type)
{
    const size_t at = buf_.size();
    attr(type, nullptr, 0);
    return at;
}

void NlMessage::nest_end(size_t at)
{
    nlattr a;
    std::memcpy(&a, buf_.data() + at, sizeof a);
    a.nla_len = static_cast<uint16_t>(buf_.size() - at);
    a.nla_type |= NLA_F_NESTED;
    std::memcpy(buf_.data() + at, &a, sizeof a);
}

void for_each_attr(const uint8_t* data, size_t len,
                   const std::function<void(uint16_t, const uint8_t*, size_t)>& f)
{
    size_t off = 0;
    while (off + NLA_HDRLEN <= len) {
        nlattr a;
        std::memcpy(&a, data + off, sizeof a);
        if (a.nla_len < NLA_HDRLEN || off + a.nla_len > len)
            return; // truncated: stop rather than read past the message
        f(static_cast<uint16_t>(a.nla_type & NLA_TYPE_MASK), data + off + NLA_HDRLEN, a.nla_len - NLA_HDRLEN);
        off += align4(a.nla_len);
    }
}

Result<NlSocket> NlSocket::open(int protocol, const std::string& context)
{
    const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return from_errno(errno, context + ": netlink socket");
    timeval tv{kReplyTimeoutSec, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) {
        const int err = errno;
        ::close(fd);
        return from_errno(err, context + ": netlink bind");
    }
    return NlSocket(fd);
}

NlSocket::~NlSocket()
{
    if (fd_ >= 0)
        ::close(fd_);
}

Result<void> NlSocket::request(NlMessage& msg, const std::function<void(const nlmsghdr*)>& on_reply,
                               const std::string& context)
{
    const uint32_t seq = seq_++;
    msg.hdr()->nlmsg_seq = seq;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    const auto& out = msg.bytes();
    if (::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
        return from_errno(errno, context + ": netlink send");

    std::vector<uint8_t> buf(32768);
    for (;;) {
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return from_errno(errno == EAGAIN ? ETIMEDOUT : errno, context + ": netlink receive");
        }
        size_t len = static_cast<size_t>(n);
        for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_seq != seq)
                continue; // a late answer to an earlier request
            if (h->nlmsg_type == NLMSG_ERROR) {
                nlmsgerr e;
                std::memcpy(&e, NLMSG_DATA(h), sizeof e);
                if (e.error == 0)
                    return {};
                return from_errno(e.error, context);
            }
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_NOOP)
                continue;
            on_reply(h);
            return {};
        }
    }
}

Result<uint16_t> genl_family_id(NlSocket& sock, const std::string& name)
{
    NlMessage msg(GENL_ID_CTRL, NLM_F_REQUEST);
    genlmsghdr g{};
    g.cmd = CTRL_CMD_GETFAMILY;
    g.version = 1;
    msg.put(&g, sizeof g);
    msg.attr_str(CTRL_ATTR_FAMILY_NAME, name);
    uint16_t id = 0;
    auto r = sock.request(
        msg,
        [&](const nlmsghdr* h) {
            if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
                return;
            const auto* p = static_cast<const uint8_t*>(NLMSG_DATA(h)) + GENL_HDRLEN;
            const size_t len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
            for_each_attr(p, len, [&](uint16_t type, const uint8_t* v, size_t l) {
                if (type == CTRL_ATTR_FAMILY_ID)
                    id = attr_get<uint16_t>(v, l);
            });
        },
        "generic netlink family " + name);
    if (!r)
        return r.error();
    if (id == 0)
        return from_errno(ENOENT, "generic netlink family " + name + ": no id in reply");
    return id;
}

} // namespace weir::nics::detail
