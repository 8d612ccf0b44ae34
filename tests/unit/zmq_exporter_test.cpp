// ZmqExporter over loopback: on a quiet link (no flow, no tick) the timer
// still sends an "event" about once a second with every field ntopng reads,
// and a partly filled flow message leaves after max_delay_ns of wall time;
// the payload format and weir's --zmq-format / --zmq-json-labels options.
#include <weir/exporters/zmq_decoder.hpp>
#include <weir/exporters/zmq_exporter.hpp>

#include <loopback.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zmq.h>

#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

using namespace weir;
using namespace weir::exporters;

namespace {

struct Received {
    std::string topic;
    ZmqParsedHeader h;
    std::vector<uint8_t> payload;
};

/// A SUB socket as ntopng's, connected to the exporter.
class Subscriber {
public:
    explicit Subscriber(const std::string& ep)
    {
        ctx_ = zmq_ctx_new();
        sock_ = zmq_socket(ctx_, ZMQ_SUB);
        zmq_setsockopt(sock_, ZMQ_SUBSCRIBE, "flow", 4);
        zmq_setsockopt(sock_, ZMQ_SUBSCRIBE, "event", 5);
        zmq_connect(sock_, ep.c_str());
    }
    ~Subscriber()
    {
        const int zero = 0;
        zmq_setsockopt(sock_, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(sock_);
        zmq_ctx_term(ctx_);
    }
    /// Every message that arrives within `ms`.
    std::vector<Received> collect(int ms)
    {
        std::vector<Received> out;
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                return out;
            zmq_pollitem_t it{sock_, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, static_cast<long>(left.count())) <= 0)
                continue;
            std::vector<std::vector<uint8_t>> frames;
            int more = 1;
            while (more) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, sock_, 0) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                const auto* d = static_cast<const uint8_t*>(zmq_msg_data(&m));
                frames.emplace_back(d, d + zmq_msg_size(&m));
                more = zmq_msg_more(&m);
                zmq_msg_close(&m);
            }
            if (frames.size() != 2)
                continue;
            Received r;
            if (parse_zmq_header(frames[0], r.h) != ZmqError::None)
                continue;
            r.topic = std::string(r.h.h.topic_view());
            r.payload = std::move(frames[1]);
            out.push_back(std::move(r));
        }
    }

private:
    void* ctx_;
    void* sock_;
};

FlowRecord flow()
{
    FlowRecord r{};
    r.key.ip_version = 4;
    r.key.proto = 17;
    r.key.addr_a = {10, 1, 1, 1};
    r.key.addr_b = {10, 2, 2, 2};
    r.key.port_a = 5000;
    r.key.port_b = 53;
    r.client_is_a = 1;
    r.dir[0] = {1, 80, 1700000000000000000ULL, 1700000000000000000ULL, 0, 0, 0, 0};
    r.dir[1] = {1, 120, 1700000000100000000ULL, 1700000000100000000ULL, 0, 0, 0, 0};
    return r;
}

uint64_t epoch_s()
{
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

} // namespace

TEST(ZmqExporter, QuietLinkSendsEventsEverySecond)
{
    const std::string ep = "tcp://127.0.0.1:" + std::to_string(weir::test::free_tcp_port());
    ZmqOptions o;
    o.endpoints = {ep};
    o.encoder.source_id = 31;
    o.iface = "eth\"0";
    o.version = "weir test";
    o.idle_timeout_s = 30;
    o.active_timeout_s = 120;
    o.wall_clock = true;
    auto ex = ZmqExporter::create(o);
    ASSERT_TRUE(ex) << ex.error().message();
    ex.value()->set_counters([] { return ZmqProbeCounters{1000, 64000, 3, 0}; });
    Subscriber sub(ep);
    ASSERT_TRUE(ex.value()->wait_for_subscribers(5000));
    // No flow, no tick: only the timer can send. Over 3.5 s about 3 events,
    // never a burst and never silence.
    const auto msgs = sub.collect(3500);
    int events = 0;
    for (const Received& m : msgs) {
        ASSERT_EQ(m.topic, "event");
        EXPECT_EQ(m.h.h.source_id, 31u);
        ++events;
        const auto js = nlohmann::json::parse(m.payload.begin(), m.payload.end());
        EXPECT_NEAR(static_cast<double>(js["time"].get<uint64_t>()), static_cast<double>(epoch_s()), 5.0);
        EXPECT_EQ(js["packets"], 1000);
        EXPECT_EQ(js["bytes"], 64000);
        EXPECT_EQ(js["packet_drops"], 3);
        EXPECT_EQ(js["mode"], "packet_collection");
        EXPECT_EQ(js["iface"]["name"], "eth\"0");
        for (const char* k : {"speed", "ip"})
            EXPECT_TRUE(js["iface"].contains(k)) << k;
        for (const char* k : {"ip", "public_ip", "uuid", "unique_source_id", "version", "osname", "license",
                              "edition", "maintenance"})
            EXPECT_TRUE(js["probe"].contains(k)) << k;
        EXPECT_EQ(js["probe"]["unique_source_id"], 31);
        EXPECT_EQ(js["probe"]["version"], "weir test");
        EXPECT_TRUE(js["avg"].contains("bps") && js["avg"].contains("pps"));
        EXPECT_EQ(js["timeout"]["lifetime"], 120);
        EXPECT_EQ(js["timeout"]["idle"], 30);
        EXPECT_EQ(js["timeout"]["collected_lifetime"], 120);
        for (const char* k : {"export_queue_full", "too_many_flows", "elk_flow_drops", "sflow_pkt_sample_drops",
                              "flow_collection_drops", "flow_collection_udp_socket_drops"})
            EXPECT_TRUE(js["drops"].contains(k)) << k;
        for (const char* k : {"nf_ipfix_flows", "collection_port", "sflow_samples", "exporters"})
            EXPECT_TRUE(js["flow_collection"].contains(k)) << k;
        EXPECT_EQ(js["zmq"]["num_flow_exports"], 0);
        EXPECT_EQ(js["zmq"]["num_zmq_exporters"], 1);
    }
    EXPECT_GE(events, 2);
    EXPECT_LE(events, 4);
    EXPECT_GE(ex.value()->stats().timer_events, 2u);
}

TEST(ZmqExporter, TimerSendsAPartlyFilledFlowMessage)
{
    const std::string ep = "tcp://127.0.0.1:" + std::to_string(weir::test::free_tcp_port());
    ZmqOptions o;
    o.endpoints = {ep};
    o.encoder.format = ZmqPayloadFormat::JsonLabels;
    o.max_delay_ns = 300000000ULL;
    o.event_interval_ns = 0;
    auto ex = ZmqExporter::create(o);
    ASSERT_TRUE(ex) << ex.error().message();
    EXPECT_NE(ex.value()->describe().find("json-labels"), std::string::npos) << ex.value()->describe();
    Subscriber sub(ep);
    ASSERT_TRUE(ex.value()->wait_for_subscribers(5000));
    ex.value()->export_flow(flow()); // packet time never moves again
    const auto msgs = sub.collect(1500);
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].topic, "flow");
    EXPECT_FALSE(msgs[0].h.tlv);
    const auto js = nlohmann::json::parse(msgs[0].payload.begin(), msgs[0].payload.end());
    ASSERT_TRUE(js.is_array());
    ASSERT_EQ(js.size(), 1u);
    EXPECT_EQ(js[0]["IPV4_SRC_ADDR"], "10.1.1.1");
    EXPECT_EQ(js[0]["L4_DST_PORT"], 53);
    EXPECT_EQ(js[0]["OUT_BYTES"], 120);
    EXPECT_EQ(ex.value()->stats().timer_flushes, 1u);
}

TEST(ZmqExporter, FormatOptions)
{
    ExportCliOptions c;
    c.zmq = {"tcp://127.0.0.1:" + std::to_string(weir::test::free_tcp_port())};
    c.zmq_format = "xml";
    auto bad = make_zmq_exporter(c, ZmqOptions{});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("--zmq-format"), std::string::npos);
    c.zmq_format = "tlv";
    c.zmq_json_labels = true;
    EXPECT_FALSE(make_zmq_exporter(c, ZmqOptions{}));
    c.zmq_format = "json";
    auto ok = make_zmq_exporter(c, ZmqOptions{});
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_NE(ok.value()->describe().find("json-labels"), std::string::npos);
}
