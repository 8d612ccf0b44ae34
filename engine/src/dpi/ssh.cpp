// SSH identification string (see ssh.hpp).
#include <weir/engine/dpi/ssh.hpp>

namespace weir::engine::dpi {

ParseStatus parse_ssh_banner(Bytes payload, SshBanner& out) noexcept
{
    out = SshBanner{};
    std::string_view s(reinterpret_cast<const char*>(payload.data()), std::min<std::size_t>(payload.size(), 255));
    if (s.size() < 4)
        return s == std::string_view("SSH-").substr(0, s.size()) && !s.empty() ? ParseStatus::NeedMore
                                                                               : ParseStatus::NotMatched;
    if (s.substr(0, 4) != "SSH-")
        return ParseStatus::NotMatched;
    s.remove_prefix(4);
    s = s.substr(0, s.find_first_of("\r\n"));
    auto dash = s.find('-');
    if (dash == std::string_view::npos || dash == 0 || dash > 15)
        return ParseStatus::Malformed;
    out.proto_version.assign(s.substr(0, dash));
    out.software.assign(s.substr(dash + 1));
    return ParseStatus::Ok;
}

} // namespace weir::engine::dpi
