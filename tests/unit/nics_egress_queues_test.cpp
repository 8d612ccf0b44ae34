// weir::nics egress queue names (weir -o N --egress-queue-name PREFIX): the
// pairs PREFIX<i> / PREFIX<i>p, and the prefixes refused before any
// interface is touched.
#include <weir/nics/egress_queues.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace {

using weir::nics::egress_queue_names;
using weir::nics::ids_side_range;
using weir::nics::kMaxEgressQueues;

TEST(EgressQueueNames, PairsInQueueOrder)
{
    auto n = egress_queue_names("weirq", 4);
    ASSERT_TRUE(n) << n.error().message();
    ASSERT_EQ(n->size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ((*n)[i].weir_side, "weirq" + std::to_string(i));
        EXPECT_EQ((*n)[i].ids_side, "weirq" + std::to_string(i) + "p");
    }
    EXPECT_EQ(ids_side_range(*n), "weirq0p..weirq3p");
}

TEST(EgressQueueNames, OneQueueIsAggregation)
{
    auto n = egress_queue_names("ids", 1);
    ASSERT_TRUE(n);
    ASSERT_EQ(n->size(), 1u);
    EXPECT_EQ(n->front().weir_side, "ids0");
    EXPECT_EQ(ids_side_range(*n), "ids0p");
}

TEST(EgressQueueNames, AllNamesDistinctAtTheMaximum)
{
    auto n = egress_queue_names("q", kMaxEgressQueues);
    ASSERT_TRUE(n);
    std::set<std::string> all;
    for (const auto& q : *n) {
        all.insert(q.weir_side);
        all.insert(q.ids_side);
    }
    EXPECT_EQ(all.size(), 2 * size_t{kMaxEgressQueues});
    EXPECT_EQ(n->back().ids_side, "q63p");
}

TEST(EgressQueueNames, CountOutsideRangeIsRefused)
{
    for (uint32_t c : {0u, kMaxEgressQueues + 1, 1000u}) {
        auto n = egress_queue_names("weirq", c);
        ASSERT_FALSE(n) << c;
        EXPECT_EQ(n.error().code, std::errc::invalid_argument);
        EXPECT_NE(n.error().message().find("1..64"), std::string::npos) << n.error().message();
    }
}

TEST(EgressQueueNames, LengthLeavesRoomForIndexAndSuffix)
{
    // IFNAMSIZ - 1 = 15: one index digit + 'p' leave 13, two digits 12.
    EXPECT_TRUE(egress_queue_names("abcdefghijklm", 10));
    EXPECT_FALSE(egress_queue_names("abcdefghijklm", 11));
    EXPECT_TRUE(egress_queue_names("abcdefghijkl", 64));
    auto n = egress_queue_names("abcdefghijklmn", 1);
    ASSERT_FALSE(n);
    EXPECT_NE(n.error().message().find("at most 13 characters"), std::string::npos) << n.error().message();
    auto m = egress_queue_names("abcdefghijkl", 64);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->back().ids_side.size(), 15u);
}

TEST(EgressQueueNames, BadPrefixesAreRefusedWithTheReason)
{
    struct Case {
        const char* prefix;
        const char* why;
    } cases[] = {
        {"", "start with a letter"},       {"0q", "start with a letter"}, {"-q", "start with a letter"},
        {"q1", "must not end in a digit"}, {"a/b", "only letters"},       {"a:b", "only letters"},
        {"a b", "only letters"},           {"a.b", "only letters"},       {"é", "start with a letter"},
    };
    for (const auto& c : cases) {
        auto n = egress_queue_names(c.prefix, 2);
        ASSERT_FALSE(n) << c.prefix;
        EXPECT_NE(n.error().message().find(c.why), std::string::npos) << c.prefix << ": " << n.error().message();
    }
    EXPECT_TRUE(egress_queue_names("wt-q_", 2));
    EXPECT_TRUE(egress_queue_names("Q2x", 2));
}

} // namespace
