// Shared checks of the verdict-applying XDP loaders (see xdp_loader.hpp).
#include "xdp_loader.hpp"

#include <weir/abi/verdict.h>
#include <weir/abi/xdp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include <fmt/format.h>

#include <cerrno>

namespace weir::dataplane::xdp_loader {

namespace {

// The descriptor is a map of the given type, key and value sizes.
Result<void> check_map_fd(int fd, bpf_map_type type, uint32_t key_size, uint32_t value_size, const char* what,
                          std::string_view who)
{
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        return from_errno(errno, fmt::format("{}: {} map fd {}", who, what, fd));
    if (info.type != uint32_t(type) || info.key_size != key_size || info.value_size != value_size)
        return invalid(fmt::format("{}: fd {} is not a {} map (type {}, key {} bytes, value {} bytes; "
                                   "want type {}, key {}, value {})",
                                   who, fd, what, info.type, info.key_size, info.value_size, uint32_t(type), key_size,
                                   value_size));
    return {};
}

} // namespace

Result<uint32_t> ifindex_of(const std::string& name, std::string_view what)
{
    const uint32_t ix = name.empty() || name.size() >= IFNAMSIZ ? 0 : if_nametoindex(name.c_str());
    if (ix == 0)
        return Error{std::make_error_code(std::errc::no_such_device),
                     fmt::format("{} '{}' does not exist", what, name)};
    return ix;
}

Result<bool> check_verdict_config(int verdict_map_fd, int subnet_verdict_map_fd, size_t egress_count,
                                  std::string_view who)
{
    const bool verdicts = verdict_map_fd >= 0 || subnet_verdict_map_fd >= 0;
    if (verdicts && (verdict_map_fd < 0 || subnet_verdict_map_fd < 0))
        return invalid(fmt::format("{}: verdicts need both the flow and the subnet verdict map", who));
    if (!verdicts && egress_count > 0)
        return invalid(fmt::format("{}: egress interfaces without verdict maps (only a DIVERT verdict uses them)", who));
    if (egress_count > WEIR_XDP_MAX_EGRESS)
        return invalid(fmt::format("{}: {} egress interfaces (at most {})", who, egress_count, WEIR_XDP_MAX_EGRESS));
    return verdicts;
}

Result<void> check_verdict_maps(int verdict_map_fd, int subnet_verdict_map_fd, std::string_view who)
{
    if (auto r = check_map_fd(verdict_map_fd, BPF_MAP_TYPE_LRU_HASH, sizeof(weir_flow_key), sizeof(weir_verdict),
                              "flow verdict", who);
        !r)
        return r;
    return check_map_fd(subnet_verdict_map_fd, BPF_MAP_TYPE_LPM_TRIE, sizeof(weir_subnet_key), sizeof(weir_verdict),
                        "subnet verdict", who);
}

Result<std::vector<uint32_t>> egress_ifindexes(const std::vector<std::string>& names, std::string_view what)
{
    std::vector<uint32_t> out;
    for (const std::string& name : names) {
        auto ix = ifindex_of(name, what);
        if (!ix)
            return ix.error();
        out.push_back(ix.value());
    }
    return out;
}

Result<void> fill_egress(bpf_map* devmap, const std::vector<uint32_t>& egress, const std::vector<std::string>& names,
                         std::string_view who)
{
    for (uint32_t i = 0; i < egress.size(); ++i) {
        const int rc = bpf_map__update_elem(devmap, &i, sizeof(i), &egress[i], sizeof(egress[i]), BPF_ANY);
        if (rc != 0)
            return from_errno(rc, fmt::format("{}: egress {} ({}) into the DEVMAP", who, i, names[i]));
    }
    return {};
}

} // namespace weir::dataplane::xdp_loader
