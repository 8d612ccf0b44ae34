// AF_XDP TX egress port (egress_afxdp.cpp), opened by EgressPort::open()
// when built with the AF_XDP back-end; private to weir::dataplane.
#pragma once

#include <weir/dataplane/egress.hpp>

namespace weir::dataplane::detail {

/// Errors: those of XskTxSocket::open() (xsk_tx.hpp), which name the interface.
Result<std::unique_ptr<EgressPort>> open_afxdp_egress(const std::string& ifname, const EgressPortOptions& opt);

} // namespace weir::dataplane::detail
