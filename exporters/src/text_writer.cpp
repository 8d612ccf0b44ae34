// Readable one-line form of a flow record, and the buffered file writer.
#include <weir/exporters/flow_file_writer.hpp>
#include <weir/exporters/flow_format.hpp>

#include <weir/core/ndpi_vocab.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <ctime>

namespace weir::exporters {

namespace {

std::string_view proto_name(uint8_t p)
{
    switch (p) {
    case 1: return "ICMP";
    case 2: return "IGMP";
    case 6: return "TCP";
    case 17: return "UDP";
    case 47: return "GRE";
    case 50: return "ESP";
    case 58: return "ICMPv6";
    case 89: return "OSPF";
    case 132: return "SCTP";
    default: return {};
    }
}

std::string endpoint(const std::array<uint8_t, 16>& a, uint16_t port, const FlowKey& k)
{
    const std::string ip = format_ip(a, k.ip_version);
    const bool has_ports = k.proto == 6 || k.proto == 17 || k.proto == 132;
    if (!has_ports)
        return ip;
    return k.ip_version == 6 ? fmt::format("[{}]:{}", ip, port) : fmt::format("{}:{}", ip, port);
}

/// Wire text (a host name) on one line: control bytes become '.'.
void append_printable(std::string& out, const char* s, std::size_t cap)
{
    for (std::size_t i = 0; i < cap && s[i]; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        out += c < 0x20 || c == 0x7f ? '.' : static_cast<char>(c);
    }
}

/// " [TLS.Google/Web] www.google.com risk 60: name, name" (what is known).
void append_text_l7(const L7Info& l, std::string& out)
{
    if (l.app || l.master) {
        out += " [";
        append_printable(out, l.name, sizeof(l.name));
        if (const std::string_view cat = ndpi_vocab::category_name(l.category); l.category && !cat.empty()) {
            out += '/';
            out += cat;
        }
        if (l.guessed)
            out += ", by port";
        out += ']';
        if (l.server_name[0]) {
            out += ' ';
            append_printable(out, l.server_name, sizeof(l.server_name));
        }
    }
    if (l.risk) {
        fmt::format_to(std::back_inserter(out), " risk {}: ", l.risk_score);
        ndpi_vocab::append_risk_names(out, l.risk, ", ");
    }
}

} // namespace

std::string format_tcp_flags(uint8_t f)
{
    static constexpr char kLetters[] = "FSRPAUEC";
    std::string s;
    for (int bit = 7; bit >= 0; --bit)
        if (f & (1u << bit))
            s.push_back(kLetters[bit]);
    return s.empty() ? "." : s;
}

void append_text(const FlowRecord& r, std::string& out)
{
    const FlowKey& k = r.key;
    const uint64_t first = r.first_ns();
    const uint64_t last = r.last_ns();
    const std::time_t secs = static_cast<std::time_t>(first / 1000000000ULL);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char when[32];
    std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    const std::string_view pn = proto_name(k.proto);
    auto it = std::back_inserter(out);
    fmt::format_to(it, "{}.{:03d} ", when, static_cast<int>((first / 1000000) % 1000));
    if (pn.empty())
        fmt::format_to(it, "proto{} ", k.proto);
    else
        fmt::format_to(it, "{} ", pn);
    fmt::format_to(it, "{} {} {}", endpoint(r.client_addr(), r.client_port(), k),
        r.dir[1].packets ? "<->" : "->", endpoint(r.server_addr(), r.server_port(), k));
    if (k.vlan)
        fmt::format_to(it, " vlan {}", k.vlan);
    if (k.tunnel_type != TunnelType::None)
        fmt::format_to(it, " tunnel {}", k.tunnel_id);
    fmt::format_to(it, " {} pkts/{} B <-> {} pkts/{} B {:.3f} s", r.dir[0].packets, r.dir[0].bytes,
        r.dir[1].packets, r.dir[1].bytes, static_cast<double>(last - first) / 1e9);
    if (k.proto == 6)
        fmt::format_to(it, " flags {}/{}", format_tcp_flags(r.dir[0].tcp_flags), format_tcp_flags(r.dir[1].tcp_flags));
    fmt::format_to(it, " end {}", end_reason_name(r.end_reason));
    append_text_l7(r.l7, out);
}

Result<std::unique_ptr<FlowFileWriter>> FlowFileWriter::open(const std::string& path, Format format)
{
    if (path == "-")
        return std::unique_ptr<FlowFileWriter>(new FlowFileWriter(stdout, false, format, "stdout"));
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f)
        return from_errno(errno, "cannot write " + path);
    return std::unique_ptr<FlowFileWriter>(new FlowFileWriter(f, true, format, path));
}

FlowFileWriter::FlowFileWriter(std::FILE* f, bool owned, Format format, std::string path)
    : f_(f), owned_(owned), format_(format), path_(std::move(path))
{
    buf_.reserve(1 << 17);
}

FlowFileWriter::~FlowFileWriter() { (void)close(); }

void FlowFileWriter::write(const FlowRecord& r)
{
    if (format_ == Format::Json)
        append_json(r, buf_);
    else
        append_text(r, buf_);
    buf_.push_back('\n');
    ++records_;
    if (buf_.size() >= (1u << 16))
        (void)drain();
}

Result<void> FlowFileWriter::drain()
{
    if (buf_.empty() || !f_)
        return {};
    if (!failed_ && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
        failed_ = true;
    buf_.clear();
    if (failed_)
        return from_errno(errno ? errno : EIO, "cannot write " + path_);
    return {};
}

Result<void> FlowFileWriter::close()
{
    if (!f_)
        return {};
    auto r = drain();
    if (std::fflush(f_) != 0 && r.ok())
        r = from_errno(errno, "cannot write " + path_);
    if (owned_)
        std::fclose(f_);
    f_ = nullptr;
    return r;
}

} // namespace weir::exporters
