// Checks and set-up shared by the loaders of the XDP programs that apply
// IDS verdicts: XdpProgram (weir_xdp, xdp_program.cpp) and Bridge
// (weir_bridge, bridge.cpp). Both take the verdict maps of
// weir/abi/verdict.h by descriptor and a list of DIVERT egress interfaces
// that becomes their weir_egress DEVMAP. Every message starts with `who`
// ("XDP program", "bridge") so an error names the loader that refused.
#pragma once

#include <weir/core/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct bpf_map;

namespace weir::dataplane::xdp_loader {

/// The index of interface `name`. An empty, over-long or unknown name is
/// ENODEV with the message "<what> '<name>' does not exist".
Result<uint32_t> ifindex_of(const std::string& name, std::string_view what);

/// The verdict configuration before anything is opened: both maps or none
/// (fd < 0), egress interfaces only with verdicts (only a DIVERT uses
/// them), at most WEIR_XDP_MAX_EGRESS of them. True when verdicts are on.
Result<bool> check_verdict_config(int verdict_map_fd, int subnet_verdict_map_fd, size_t egress_count,
                                  std::string_view who);

/// Both descriptors are verdict maps of the kernel ABI (type, key and value
/// sizes), checked here so that a wrong descriptor is a clear error rather
/// than a verifier message at load.
Result<void> check_verdict_maps(int verdict_map_fd, int subnet_verdict_map_fd, std::string_view who);

/// The ifindexes of the egress interfaces, in order (what: as ifindex_of).
Result<std::vector<uint32_t>> egress_ifindexes(const std::vector<std::string>& names, std::string_view what);

/// Slot i of the loaded program's egress DEVMAP gets egress[i] (names[i]
/// for the message).
Result<void> fill_egress(bpf_map* devmap, const std::vector<uint32_t>& egress, const std::vector<std::string>& names,
                         std::string_view who);

} // namespace weir::dataplane::xdp_loader
