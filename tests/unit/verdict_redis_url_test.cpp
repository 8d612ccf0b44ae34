// Redis verdict transport, the pure parts: URL parsing (a password on the
// command line is refused), the id spliced into replies, password files.
// The transport itself runs against a real redis-server in
// tests/live/verdict_redis_test.cpp.
#include <weir/dataplane/verdict_redis.hpp>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

using namespace weir::dataplane;

#if WEIR_HAVE_VERDICT_REDIS

TEST(RedisUrl, Forms)
{
    auto a = parse_redis_url("redis://127.0.0.1:6380/weir.v");
    ASSERT_TRUE(a.ok()) << a.error().message();
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 6380);
    EXPECT_EQ(a->channel, "weir.v");
    EXPECT_TRUE(a->username.empty());

    auto b = parse_redis_url("redis://ids@[::1]:7000/ch");
    ASSERT_TRUE(b.ok()) << b.error().message();
    EXPECT_EQ(b->host, "::1");
    EXPECT_EQ(b->port, 7000);
    EXPECT_EQ(b->username, "ids");
    EXPECT_EQ(b->channel, "ch");

    auto c = parse_redis_url("localhost:6390");  // host:port, default channel
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->host, "localhost");
    EXPECT_EQ(c->port, 6390);
    EXPECT_EQ(c->channel, "weir.verdicts");

    auto d = parse_redis_url("unix:///run/redis/redis.sock#weir.x");
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->unix_path, "/run/redis/redis.sock");
    EXPECT_EQ(d->channel, "weir.x");

    auto e = parse_redis_url("redis://10.0.0.1");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->port, 6379);
}

TEST(RedisUrl, Refusals)
{
    auto pw = parse_redis_url("redis://:secret@127.0.0.1:6379/ch");
    ASSERT_FALSE(pw.ok());
    EXPECT_NE(pw.error().context.find("password"), std::string::npos);
    EXPECT_FALSE(parse_redis_url("redis://user:secret@127.0.0.1/ch").ok());
    EXPECT_FALSE(parse_redis_url("rediss://127.0.0.1/ch").ok());
    EXPECT_FALSE(parse_redis_url("redis://127.0.0.1:0/ch").ok());
    EXPECT_FALSE(parse_redis_url("redis://127.0.0.1:70000/ch").ok());
    EXPECT_FALSE(parse_redis_url("redis://127.0.0.1:x/ch").ok());
    EXPECT_FALSE(parse_redis_url("redis://[::1/ch").ok());
    EXPECT_FALSE(parse_redis_url("unix://relative.sock").ok());
}

TEST(RedisReply, IdIsSplicedIn)
{
    using json = nlohmann::json;
    auto r = json::parse(reply_with_id(R"({"installed":1,"ok":true})", R"("abc")"));
    EXPECT_EQ(r["id"], "abc");
    EXPECT_EQ(r["installed"], 1);
    EXPECT_EQ(r["ok"], true);
    EXPECT_EQ(json::parse(reply_with_id("{}", "7"))["id"], 7);
    EXPECT_EQ(json::parse(reply_with_id(R"({"ok":true})", R"({"n":[1,2]})"))["id"]["n"][1], 2);
    EXPECT_EQ(reply_with_id(R"({"ok":true})", ""), R"({"ok":true})");  // no id asked
}

TEST(RedisPassword, FileAndEnvironment)
{
    ::setenv("WRD_TEST_PW", "from-env", 1);
    auto env = load_redis_password("", "WRD_TEST_PW");
    ASSERT_TRUE(env.ok());
    EXPECT_EQ(*env, "from-env");
    ::unsetenv("WRD_TEST_PW");
    auto none = load_redis_password("", "WRD_TEST_PW");
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none, "");

    char path[] = "/tmp/wrd_pwXXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);
    {
        std::ofstream(path) << "s3cret\r\nsecond line ignored\n";
    }
    ::chmod(path, 0640);
    auto f = load_redis_password(path);
    ASSERT_TRUE(f.ok()) << f.error().message();
    EXPECT_EQ(*f, "s3cret");
    ::chmod(path, 0604);
    EXPECT_FALSE(load_redis_password(path).ok());
    std::remove(path);
    EXPECT_FALSE(load_redis_password(path).ok());  // missing file
}

#else
TEST(RedisUrl, Unavailable)
{
    GTEST_SKIP() << "built without hiredis (libhiredis-dev)";
}
#endif
