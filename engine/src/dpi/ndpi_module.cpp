// NdpiModule: libndpi behind a small C++ interface (see ndpi_module.hpp).
// nDPI's headers come in through the imported pkg-config target, whose
// include directory CMake passes as a system one, so their warnings do not
// meet -Werror; the pragmas cover what C++ says of C headers in any case.
#include "ndpi_module.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <ndpi_api.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace weir::engine::dpi {

namespace {

// Flow is an opaque name for nDPI's flow struct.
ndpi_flow_struct* raw(NdpiModule::Flow* f) noexcept { return reinterpret_cast<ndpi_flow_struct*>(f); }

template <std::size_t N>
void copy_text(char (&dst)[N], const char* s, std::size_t max) noexcept
{
    if (!s) {
        dst[0] = '\0';
        return;
    }
    std::size_t n = ::strnlen(s, std::min(max, N - 1));
    std::memcpy(dst, s, n);
    dst[n] = '\0';
}

bool is_proto(const ndpi_protocol& p, uint16_t id) noexcept
{
    return p.master_protocol == id || p.app_protocol == id;
}

// Dissectors that keep their results in flow->protos.tls_quic (a union:
// reading it for another protocol would read another dissector's bytes).
bool uses_tls_fields(const ndpi_protocol& p) noexcept
{
    for (uint16_t id : {NDPI_PROTOCOL_TLS, NDPI_PROTOCOL_QUIC, NDPI_PROTOCOL_DTLS, NDPI_PROTOCOL_MAIL_IMAPS,
                        NDPI_PROTOCOL_MAIL_POPS, NDPI_PROTOCOL_MAIL_SMTPS})
        if (is_proto(p, id))
            return true;
    return false;
}

} // namespace

struct NdpiModule::Impl {
    ndpi_detection_module_struct* mod = nullptr;

    ~Impl()
    {
        if (mod)
            ndpi_exit_detection_module(mod);
    }

    // Copies what nDPI found into l7: the fields ndpiReader prints.
    void fill(const ndpi_flow_struct* f, ndpi_protocol p, bool guessed, L7Info& l7) const noexcept
    {
        l7.master = p.master_protocol;
        l7.app = p.app_protocol;
        l7.guessed = guessed ? 1 : 0;
        char buf[64];
        copy_text(l7.name, ndpi_protocol2name(mod, p, buf, sizeof(buf)), sizeof(buf));
        l7.category = static_cast<uint16_t>(ndpi_get_proto_category(mod, p));
        l7.confidence = static_cast<uint8_t>(f->confidence);
        l7.risk = f->risk;
        u_int16_t client_score = 0, server_score = 0;
        l7.risk_score = f->risk ? ndpi_risk2score(f->risk, &client_score, &server_score) : 0;
        copy_text(l7.server_name, f->host_server_name, sizeof(f->host_server_name));
        if (uses_tls_fields(p)) {
            copy_text(l7.ja3c, f->protos.tls_quic.ja3_client, sizeof(f->protos.tls_quic.ja3_client));
            copy_text(l7.ja3s, f->protos.tls_quic.ja3_server, sizeof(f->protos.tls_quic.ja3_server));
        }
        if (f->http.url)
            copy_text(l7.url, f->http.url, sizeof(l7.url));
        if (f->http.user_agent)
            copy_text(l7.user_agent, f->http.user_agent, sizeof(l7.user_agent));
        l7.http_method = static_cast<uint8_t>(f->http.method);
        l7.http_status = f->http.response_status_code;
        if (is_proto(p, NDPI_PROTOCOL_DNS)) {
            l7.dns_qtype = f->protos.dns.query_type;
            l7.dns_rcode = f->protos.dns.reply_code;
        }
    }
};

NdpiModule::NdpiModule(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NdpiModule::~NdpiModule() = default;

Result<std::unique_ptr<NdpiModule>> NdpiModule::create(const std::string& protos_file)
{
    auto impl = std::make_unique<Impl>();
    impl->mod = ndpi_init_detection_module(ndpi_no_prefs);
    if (!impl->mod)
        return from_errno(ENOMEM, "cannot create the nDPI detection module");
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(impl->mod, &all);
    // As ndpiReader: TLS is dissected block by block once the handshake is
    // over, so the server certificate is read even across segments.
    ndpi_set_detection_preferences(impl->mod, ndpi_pref_enable_tls_block_dissection, 1);
    if (!protos_file.empty()) {
        // nDPI's loader prints its own complaint; the status is what counts.
        if (ndpi_load_protocols_file(impl->mod, protos_file.c_str()) < 0)
            return invalid("nDPI cannot load the protocols file '" + protos_file + "'");
    }
    ndpi_finalize_initialization(impl->mod);
    return std::unique_ptr<NdpiModule>(new NdpiModule(std::move(impl)));
}

NdpiModule::Flow* NdpiModule::new_flow() noexcept
{
    void* p = ndpi_flow_malloc(SIZEOF_FLOW_STRUCT);
    if (!p)
        return nullptr;
    std::memset(p, 0, SIZEOF_FLOW_STRUCT);
    return static_cast<Flow*>(p);
}

void NdpiModule::free_flow(Flow* f) noexcept
{
    if (f)
        ndpi_free_flow(raw(f)); // the dissectors' allocations, then the state
}

NdpiModule::Step NdpiModule::process(Flow* f, const uint8_t* ip, uint32_t len, uint64_t time_ms, bool enough,
                                     L7Info& l7) noexcept
{
    Step st;
    const auto n = static_cast<unsigned short>(std::min<uint32_t>(len, 0xffff));
    ndpi_flow_struct* nf = raw(f);
    ndpi_protocol p = ndpi_detection_process_packet(impl_->mod, nf, ip, n, time_ms);
    if (p.app_protocol != NDPI_PROTOCOL_UNKNOWN) {
        impl_->fill(nf, p, false, l7);
        st.found = true;
        // Keep reading while nDPI can still add to what it found.
        st.done = enough || !ndpi_extra_dissection_possible(impl_->mod, nf);
        return st;
    }
    if (enough) {
        st.found = give_up(f, l7);
        st.done = true;
        st.gave_up = true;
    }
    return st;
}

bool NdpiModule::give_up(Flow* f, L7Info& l7) noexcept
{
    uint8_t guessed = 0;
    ndpi_protocol p = ndpi_detection_giveup(impl_->mod, raw(f), 1, &guessed);
    impl_->fill(raw(f), p, guessed != 0, l7);
    return p.app_protocol != NDPI_PROTOCOL_UNKNOWN || p.master_protocol != NDPI_PROTOCOL_UNKNOWN;
}

std::vector<NdpiProtocolInfo> NdpiModule::protocols() const
{
    std::vector<NdpiProtocolInfo> out;
    ndpi_proto_defaults_t* defs = ndpi_get_proto_defaults(impl_->mod);
    const u_int n = ndpi_get_num_supported_protocols(impl_->mod);
    for (u_int i = 0; i < n; ++i) {
        if (!defs[i].protoName)
            continue;
        const char* cat = ndpi_category_get_name(impl_->mod, defs[i].protoCategory);
        out.push_back({static_cast<uint16_t>(i), defs[i].protoName, cat ? cat : ""});
    }
    return out;
}

uint32_t NdpiModule::flow_state_size() noexcept { return SIZEOF_FLOW_STRUCT; }

std::string NdpiModule::version() { return ndpi_revision(); }

} // namespace weir::engine::dpi
