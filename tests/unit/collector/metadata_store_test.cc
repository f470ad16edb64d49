// Metadata records (collector/metadata.h): parsing and checking at ingest, and storing,
// hunting and retention on every AlertStore backend (store_backends.h).
#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "senningen/collector/metadata.h"
#include "store_backends.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

constexpr std::int64_t kDayNs = 24 * 3'600'000'000'000LL;

// Records as the agent writes them (tests/golden/it-analyzers/expected-records.json).
const std::string kDns =
    R"({"timestamp":"2026-01-15T10:00:00.001000000Z","flow_id":17834862150220030177,)"
    R"("event_type":"dns","src_ip":"192.0.2.20","src_port":53001,"dest_ip":"192.0.2.1",)"
    R"("dest_port":53,"proto":"UDP","app_proto":"dns","dns":{"type":"answer","id":4097,)"
    R"("queries":[{"rrname":"c2.Bad-Vendor.example","rrtype":1,"rrtype_name":"A"}],)"
    R"("answers":[{"rrname":"c2.bad-vendor.example","rrtype":1,"rrtype_name":"A",)"
    R"("ttl":60,"rdata":"198.51.100.77"}]}})";
const std::string kHttp =
    R"({"timestamp":"2026-01-15T10:00:01.000000000Z","flow_id":42,"event_type":"http",)"
    R"("src_ip":"192.0.2.20","src_port":40000,"dest_ip":"198.51.100.80","dest_port":80,)"
    R"("proto":"TCP","app_proto":"http","http":{"trans_depth":1,"method":"GET",)"
    R"("host":"evil.example","uri":"/payload.exe","user_agent":"curl/8",)"
    R"("resp_filenames":["Invoice.exe"],"status_code":200}})";
const std::string kFiles =
    R"({"timestamp":"2026-01-15T10:00:02.000000000Z","flow_id":42,"event_type":"files",)"
    R"("src_ip":"198.51.100.80","src_port":80,"dest_ip":"192.0.2.20","dest_port":40000,)"
    R"("proto":"TCP","files":{"fuid":"FhA1b2","filename":"invoice.exe","md5":)"
    R"("0123456789abcdef0123456789abcdef","sha256":)"
    R"("AAAABBBBCCCCDDDDEEEEFFFF0000111122223333444455556666777788889999"}})";
const std::string kConn =
    R"({"timestamp":"2026-01-15T10:00:00.000000000Z","flow_id":42,"event_type":"conn",)"
    R"("src_ip":"192.0.2.20","src_port":40000,"dest_ip":"198.51.100.80","dest_port":80,)"
    R"("proto":"TCP","conn":{"uid":"CxYz123","conn_state":"SF","orig_bytes":10}})";
const std::string kSmtp =
    R"({"timestamp":"2026-01-15T10:00:03.000000000Z","flow_id":7,"event_type":"smtp",)"
    R"("src_ip":"192.0.2.30","src_port":40001,"dest_ip":"198.51.100.25","dest_port":25,)"
    R"("proto":"TCP","smtp":{"mail_from":"<Boss@Corp.example>",)"
    R"("to":["Mallory <mallory@evil.example>"],"reply_to":["replies@bad-sender.example"],)"
    R"("path":["203.0.113.66"],"user_agent":"EvilMailer 1.0",)"
    R"("x_originating_ip":"203.0.113.77"}})";

ParsedMetadata parsed(const std::string& json) {
    auto p = parse_metadata_record(json);
    if (const auto* bad = std::get_if<MetadataParseError>(&p)) {
        ADD_FAILURE() << bad->message;
        return {};
    }
    return std::get<ParsedMetadata>(p);
}

MetadataProblem problem_of(const std::string& json) {
    auto p = parse_metadata_record(json);
    const auto* bad = std::get_if<MetadataParseError>(&p);
    EXPECT_NE(bad, nullptr) << json;
    return bad ? bad->problem : MetadataProblem::kNotJson;
}

bool has_value(const ParsedMetadata& m, const std::string& v) {
    return std::find(m.values.begin(), m.values.end(), v) != m.values.end();
}

TEST(MetadataRecord, ExtractsTypeTimeIdsAndIndicatorValues) {
    const ParsedMetadata dns = parsed(kDns);
    EXPECT_EQ(dns.type, "dns");
    EXPECT_EQ(dns.flow_id, "17834862150220030177");  // above 2^63: kept exactly
    EXPECT_EQ(dns.timestamp_ns, common::parse_timestamp("2026-01-15T10:00:00.001Z").value());
    EXPECT_TRUE(has_value(dns, "c2.bad-vendor.example"));  // lower-cased, once
    EXPECT_EQ(std::count(dns.values.begin(), dns.values.end(), "c2.bad-vendor.example"), 1);
    EXPECT_TRUE(has_value(dns, "198.51.100.77"));
    EXPECT_TRUE(has_value(dns, "192.0.2.20"));
    EXPECT_FALSE(has_value(dns, "answer"));  // a state, not an indicator
    EXPECT_FALSE(has_value(dns, "a"));
    EXPECT_EQ(dns.json, kDns);
    EXPECT_EQ(dns.digest.size(), 64U);

    const ParsedMetadata http = parsed(kHttp);
    EXPECT_TRUE(has_value(http, "evil.example"));
    EXPECT_TRUE(has_value(http, "http://evil.example/payload.exe"));
    EXPECT_TRUE(has_value(http, "evil.example/payload.exe"));
    EXPECT_TRUE(has_value(http, "invoice.exe"));
    EXPECT_FALSE(has_value(http, "get"));

    const ParsedMetadata files = parsed(kFiles);
    EXPECT_EQ(files.uid, "FhA1b2");
    EXPECT_TRUE(
        has_value(files, "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999"));
    EXPECT_TRUE(has_value(files, "0123456789abcdef0123456789abcdef"));

    const ParsedMetadata conn = parsed(kConn);
    EXPECT_EQ(conn.uid, "CxYz123");
    EXPECT_TRUE(has_value(conn, "cxyz123"));

    const ParsedMetadata port =
        parsed(R"({"timestamp":"2026-01-15T10:00:01Z","event_type":"http","http":)"
               R"({"host":"Files.example:8080","uri":"/a?b=1"}})");
    EXPECT_TRUE(has_value(port, "files.example:8080"));
    EXPECT_TRUE(has_value(port, "files.example"));
    EXPECT_TRUE(has_value(port, "http://files.example:8080/a?b=1"));
    EXPECT_TRUE(has_value(port, "http://files.example:8080/a"));
    const ParsedMetadata path =
        parsed(R"({"timestamp":"2026-01-15T10:00:01Z","event_type":"files","files":)"
               R"({"filename":"tools\\Payload.exe"}})");
    EXPECT_TRUE(has_value(path, "tools\\payload.exe"));
    EXPECT_TRUE(has_value(path, "payload.exe"));

    const ParsedMetadata smtp = parsed(kSmtp);
    EXPECT_TRUE(has_value(smtp, "boss@corp.example"));
    EXPECT_TRUE(has_value(smtp, "mallory@evil.example"));
    EXPECT_TRUE(has_value(smtp, "replies@bad-sender.example"));
    EXPECT_TRUE(has_value(smtp, "203.0.113.66"));  // the Received path
    EXPECT_TRUE(has_value(smtp, "203.0.113.77"));
    EXPECT_TRUE(has_value(smtp, "evilmailer 1.0"));
    const ParsedMetadata user =
        parsed(R"({"timestamp":"2026-01-15T10:00:01Z","event_type":"http","http":)"
               R"({"host":"hmi.plant","uri":"/","username":"Operator"}})");
    EXPECT_TRUE(has_value(user, "operator"));
}

TEST(MetadataRecord, RefusesBadRecordsByNamedReason) {
    EXPECT_EQ(problem_of("{\"timestamp\": "), MetadataProblem::kNotJson);
    EXPECT_EQ(problem_of("not json at all"), MetadataProblem::kNotJson);
    EXPECT_EQ(problem_of("[1, 2]"), MetadataProblem::kNotObject);
    EXPECT_EQ(problem_of("{\"event_type\":\"dns\",\"timestamp\":\"2026-01-15T10:00:00Z\",\"x\":\"" +
                         std::string(kMaxMetadataRecordBytes, 'a') + "\"}"),
              MetadataProblem::kOversize);
    EXPECT_EQ(problem_of(R"({"timestamp":"2026-01-15T10:00:00Z"})"),
              MetadataProblem::kBadEventType);
    EXPECT_EQ(problem_of(R"({"timestamp":"2026-01-15T10:00:00Z","event_type":7})"),
              MetadataProblem::kBadEventType);
    EXPECT_EQ(problem_of(R"({"timestamp":"2026-01-15T10:00:00Z","event_type":"alert"})"),
              MetadataProblem::kBadEventType);
    EXPECT_EQ(problem_of(R"({"timestamp":"2026-01-15T10:00:00Z","event_type":"DNS; drop"})"),
              MetadataProblem::kBadEventType);
    EXPECT_EQ(problem_of(R"({"event_type":"dns"})"), MetadataProblem::kBadTimestamp);
    EXPECT_EQ(problem_of(R"({"event_type":"dns","timestamp":"yesterday"})"),
              MetadataProblem::kBadTimestamp);
    EXPECT_EQ(problem_of(R"({"event_type":"dns","timestamp":12})"), MetadataProblem::kBadTimestamp);
    EXPECT_EQ(
        problem_of(R"({"event_type":"dns","timestamp":"2026-01-15T10:00:00Z","flow_id":"x"})"),
        MetadataProblem::kBadField);
    EXPECT_EQ(problem_of(R"({"event_type":"dns","timestamp":"2026-01-15T10:00:00Z","src_ip":1})"),
              MetadataProblem::kBadField);
    EXPECT_EQ(
        problem_of(R"({"event_type":"conn","timestamp":"2026-01-15T10:00:00Z","conn":{"uid":5}})"),
        MetadataProblem::kBadField);
    EXPECT_EQ(to_string(MetadataProblem::kOversize), "oversize");
    EXPECT_EQ(to_string(MetadataProblem::kBadField), "bad_field");
}

TEST(MetadataRecord, NormalisesValues) {
    EXPECT_EQ(metadata_value("  Evil.Example. "), "evil.example");
    EXPECT_EQ(metadata_value("<Boss@Corp.example>"), "boss@corp.example");
    EXPECT_EQ(metadata_value("http://Evil.example/A/"), "http://evil.example/a/");
    EXPECT_EQ(metadata_value("   "), "");
}

class MetadataStoreTest : public test::BackendTest {
protected:
    std::vector<MetadataInsertResult> insert(const std::string& agent,
                                             const std::vector<std::string>& records,
                                             std::int64_t received_ns = common::now_ns()) {
        MetadataBatchIn batch{agent, {}};
        for (const auto& r : records) batch.records.push_back(parsed(r));
        auto done = store_->insert_metadata({batch}, received_ns);
        EXPECT_TRUE(done.ok()) << done.error().message;
        return done.ok() ? *done : std::vector<MetadataInsertResult>{};
    }
    std::vector<StoredMetadata> hunt(MetadataQuery q) {
        auto found = store_->hunt_metadata(q);
        EXPECT_TRUE(found.ok()) << found.error().message;
        return found.ok() ? *found : std::vector<StoredMetadata>{};
    }
    std::vector<StoredMetadata> hunt(const std::string& value) {
        MetadataQuery q;
        q.value = metadata_value(value);
        return hunt(q);
    }
    static std::vector<std::string> types(const std::vector<StoredMetadata>& found) {
        std::vector<std::string> out;
        for (const auto& m : found) out.push_back(m.type);
        return out;
    }
};

TEST_P(MetadataStoreTest, HuntsStoredRecordsByIndicatorValue) {
    auto r = insert("sensor-a", {kConn, kDns, kHttp, kFiles, kSmtp});
    ASSERT_EQ(r.size(), 1U);
    EXPECT_EQ(r[0], (MetadataInsertResult{5, 0}));
    EXPECT_EQ(store_->metadata_count().value(), 5U);

    const auto dns = hunt("C2.bad-vendor.example.");
    ASSERT_EQ(dns.size(), 1U);
    EXPECT_EQ(dns[0].type, "dns");
    EXPECT_EQ(dns[0].agent_id, "sensor-a");
    EXPECT_EQ(dns[0].json, kDns);
    EXPECT_EQ(dns[0].flow_id, "17834862150220030177");
    EXPECT_EQ(types(hunt("http://evil.example/payload.exe")), std::vector<std::string>{"http"});
    EXPECT_EQ(types(hunt("Invoice.EXE")), (std::vector<std::string>{"files", "http"}));
    EXPECT_EQ(types(hunt("AAAABBBBCCCCDDDDEEEEFFFF0000111122223333444455556666777788889999")),
              std::vector<std::string>{"files"});
    EXPECT_EQ(types(hunt("boss@corp.example")), std::vector<std::string>{"smtp"});
    EXPECT_EQ(hunt("CxYz123").size(), 1U);
    // Newest first: files (10:00:02), http (10:00:01), dns (.001), conn (10:00:00).
    EXPECT_EQ(types(hunt("192.0.2.20")),
              (std::vector<std::string>{"files", "http", "dns", "conn"}));
    EXPECT_TRUE(hunt("never-seen.example").empty());
    EXPECT_TRUE(hunt("get").empty());  // a method is no indicator

    MetadataQuery q;
    q.value = "192.0.2.20";
    q.type = "http";
    EXPECT_EQ(types(hunt(q)), std::vector<std::string>{"http"});
    q.type.reset();
    q.agent_id = "sensor-b";
    EXPECT_TRUE(hunt(q).empty());
    q.agent_id.reset();
    q.since_ns = common::parse_timestamp("2026-01-15T10:00:00.001Z").value();
    q.until_ns = common::parse_timestamp("2026-01-15T10:00:02Z").value();
    EXPECT_EQ(types(hunt(q)), (std::vector<std::string>{"http", "dns"}));

    MetadataQuery all;  // no value: everything, newest first
    all.type = "conn";
    EXPECT_EQ(types(hunt(all)), std::vector<std::string>{"conn"});
}

TEST_P(MetadataStoreTest, StoresARecordOncePerAgent) {
    EXPECT_EQ(insert("sensor-a", {kDns, kHttp})[0], (MetadataInsertResult{2, 0}));
    // A resend (lost acknowledgement, resumed capture) stores nothing twice.
    EXPECT_EQ(insert("sensor-a", {kDns, kHttp, kConn})[0], (MetadataInsertResult{1, 2}));
    // The same record from another agent is another observation.
    EXPECT_EQ(insert("sensor-b", {kDns})[0], (MetadataInsertResult{1, 0}));
    EXPECT_EQ(store_->metadata_count().value(), 4U);
    const auto found = hunt("c2.bad-vendor.example");
    ASSERT_EQ(found.size(), 2U);
    EXPECT_NE(found[0].agent_id, found[1].agent_id);
}

TEST_P(MetadataStoreTest, PagesWithAPositionNeverSkipOrRepeat) {
    std::vector<std::string> records;
    for (int i = 0; i < 7; ++i) {
        // Two records per second: equal time stamps are ordered by id.
        records.push_back(R"({"timestamp":"2026-01-15T10:00:0)" + std::to_string(i / 2) +
                          R"(Z","event_type":"dns","src_ip":"192.0.2.9","n":)" + std::to_string(i) +
                          "}");
    }
    insert("sensor-a", records);
    MetadataQuery q;
    q.value = "192.0.2.9";
    q.limit = 3;
    std::vector<std::int64_t> seen;
    for (int page = 0; page < 5; ++page) {
        const auto found = hunt(q);
        for (const auto& m : found) seen.push_back(m.id);
        if (found.size() < q.limit) break;
        q.after = MetadataPosition{found.back().timestamp_ns, found.back().id};
    }
    ASSERT_EQ(seen.size(), 7U);
    for (std::size_t i = 1; i < seen.size(); ++i) {
        EXPECT_NE(seen[i], seen[i - 1]);
    }
    std::vector<std::int64_t> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
}

TEST_P(MetadataStoreTest, RefusesBadHunts) {
    MetadataQuery q;
    q.value = "ab";
    EXPECT_EQ(store_->hunt_metadata(q).error().code, common::ErrorCode::kInvalidArgument);
    q.value = "abc";
    q.limit = 0;
    EXPECT_EQ(store_->hunt_metadata(q).error().code, common::ErrorCode::kInvalidArgument);
    q.limit = kMaxHuntLimit + 1;
    EXPECT_EQ(store_->hunt_metadata(q).error().code, common::ErrorCode::kInvalidArgument);
}

TEST_P(MetadataStoreTest, RetentionDeletesTheOldestStoredByAgeAndByCount) {
    const std::int64_t now = common::now_ns();
    insert("sensor-a", {kConn, kDns}, now - 40 * kDayNs);  // stored 40 days ago
    insert("sensor-a", {kHttp, kFiles, kSmtp}, now);
    MetadataRetention retention;
    retention.max_rows = 0;
    retention.max_age_ns = 30 * kDayNs;
    EXPECT_EQ(store_->prune_metadata(retention, now, 1000).value(), 2U);
    EXPECT_TRUE(hunt("c2.bad-vendor.example").empty());
    EXPECT_TRUE(hunt("cxyz123").empty());
    EXPECT_EQ(store_->metadata_count().value(), 3U);
    // The index entries went with their records: the address is only in the newer ones.
    EXPECT_EQ(types(hunt("192.0.2.20")), (std::vector<std::string>{"files", "http"}));

    retention.max_age_ns = 0;
    retention.max_rows = 1;
    // At most MAX_DELETE per call: one, then the other.
    EXPECT_EQ(store_->prune_metadata(retention, now, 1).value(), 1U);
    EXPECT_EQ(store_->prune_metadata(retention, now, 1).value(), 1U);
    EXPECT_EQ(store_->prune_metadata(retention, now, 1).value(), 0U);
    EXPECT_EQ(store_->metadata_count().value(), 1U);
    // The newest stored stays.
    EXPECT_EQ(types(hunt("boss@corp.example")), std::vector<std::string>{"smtp"});
    EXPECT_TRUE(hunt("invoice.exe").empty());
    // Nothing to do: nothing deleted.
    EXPECT_EQ(store_->prune_metadata(MetadataRetention{}, now, 1000).value(), 0U);
}

TEST_P(MetadataStoreTest, SurvivesReopening) {
    insert("sensor-a", {kDns});
    reopen();
    EXPECT_EQ(hunt("c2.bad-vendor.example").size(), 1U);
    EXPECT_EQ(insert("sensor-a", {kDns})[0], (MetadataInsertResult{0, 1}));
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataStoreTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

}  // namespace
}  // namespace senningen::collector
