// NdpiModule: the one place that includes nDPI's headers (libndpi 4.x).
//
// One module per DpiStage, so per worker thread: nDPI's detection module is
// not thread-safe, and each worker owns its own. The module hands out
// opaque per-flow states (ndpi_flow_struct, 688 bytes in 4.2 plus what its
// dissectors allocate, e.g. the HTTP URL) that DpiStage holds only while a
// flow is being detected; results are copied into the flow's L7Info before
// the state is freed.
//
// Detection follows ndpiReader (example/reader_util.c, packet_processing):
// every packet of a flow goes to ndpi_detection_process_packet() from its IP
// header; once an application protocol is known the flow is done unless
// nDPI can still read more (ndpi_extra_dissection_possible(), e.g. the
// server certificate), and a flow that has had more than the packet bound
// (ndpiReader -T/-U, 80 TCP / 24 UDP) is done too, with
// ndpi_detection_giveup(guess on) when nothing was found.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/result.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weir::engine::dpi {

struct NdpiProtocolInfo {
    uint16_t id = 0;
    std::string name;
    std::string category;
};

class NdpiModule {
public:
    /// Opaque per-flow detection state (struct ndpi_flow_struct).
    struct Flow;

    /// What one packet did to a flow's detection.
    struct Step {
        bool found = false; ///< l7 holds an application protocol
        bool done = false;  ///< detection is over: free the flow state
        bool gave_up = false; ///< over because of the packet bound
    };

    /// All protocols enabled, ndpiReader's preferences, `protos_file`
    /// (ntop's protos.txt format) loaded when not empty. Errors: EINVAL for
    /// a protocols file nDPI refuses, ENOMEM.
    static Result<std::unique_ptr<NdpiModule>> create(const std::string& protos_file);
    ~NdpiModule();
    NdpiModule(const NdpiModule&) = delete;
    NdpiModule& operator=(const NdpiModule&) = delete;

    /// A zeroed flow state, or nullptr when memory is short.
    Flow* new_flow() noexcept;
    /// Frees a flow state and what nDPI allocated for it.
    void free_flow(Flow* f) noexcept;

    /// Feeds one IP packet (from its IP header). `enough` says the flow has
    /// passed its packet bound with this packet: detection then ends here.
    /// On a detection, l7 is filled from the flow state.
    Step process(Flow* f, const uint8_t* ip, uint32_t len, uint64_t time_ms, bool enough, L7Info& l7) noexcept;

    /// Ends detection of a flow that was not done (end of flow or capture):
    /// nDPI's guess when nothing was found. Fills l7; true when it holds a
    /// protocol.
    bool give_up(Flow* f, L7Info& l7) noexcept;

    /// The protocols the module knows (built-in and custom), in id order.
    std::vector<NdpiProtocolInfo> protocols() const;

    /// sizeof(struct ndpi_flow_struct).
    static uint32_t flow_state_size() noexcept;
    /// nDPI's version string.
    static std::string version();

private:
    struct Impl;
    explicit NdpiModule(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace weir::engine::dpi
