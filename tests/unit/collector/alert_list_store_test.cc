// The alert list's filters, orders and keyset pages in the store, on every backend
// (store_backends.h): rule, source, protocol, addresses and CIDR blocks, free text, the four
// sorts, and the migration that adds their columns to a database that has alerts already.
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "store_backends.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::Alert;
using common::ErrorCode;
using Poco::Data::Keywords::now;
using test::base_ns;
using test::ids_of;
using test::kMinuteNs;
using test::make_alert;

Alert with_addresses(Alert a, const std::string& src, const std::string& dest) {
    a.network->src_ip = src;
    a.network->dest_ip = dest;
    return a;
}

AddressRange range(const std::string& text) {
    auto r = parse_address_range(text);
    EXPECT_TRUE(r.ok()) << text << ": " << r.error().message;
    return r.ok() ? *r : AddressRange{};
}

class AlertListStoreTest : public test::BackendTest {
protected:
    // a0 .. a5, a minute apart, a0 oldest:
    //   a0 10.0.0.5 -> 10.0.1.20 TCP policy  "SENNINGEN TEST modbus write to coil"
    //   a1 192.168.7.9 -> 10.0.1.20 UDP intel "Intel hit on a bad domain"
    //   a2 2001:db8::1 -> 2001:db8:0:1::2 TCP yara "ET MALWARE Evil-Download", match "PowerShell
    //   -enc" a3 ::ffff:10.0.0.7 (written as IPv6) -> 172.16.0.1 ICMP policy a4 a file alert (no
    //   addresses), yara "Webshell_PHP", match "eval(base64_decode(" a5 fe80::1 -> ff02::1 udp
    //   (lower case) policy
    std::vector<Alert> seed() {
        std::vector<Alert> a;
        a.push_back(with_addresses(make_alert("s1", base_ns(), 2), "10.0.0.5", "10.0.1.20"));
        Alert intel =
            with_addresses(make_alert("s1", base_ns() + kMinuteNs, 3), "192.168.7.9", "10.0.1.20");
        intel.source = common::RuleSource::kIntel;
        intel.rule = "Intel hit on a bad domain";
        intel.network->proto = "UDP";
        intel.intel =
            common::IntelContext{"bad.example", "Intel::DOMAIN", "DNS::IN_REQUEST", {"feed-a"}};
        a.push_back(intel);
        Alert yara = with_addresses(make_alert("s2", base_ns() + 2 * kMinuteNs, 1), "2001:db8::1",
                                    "2001:db8:0:1::2");
        yara.source = common::RuleSource::kYara;
        yara.rule = "ET MALWARE Evil-Download";
        common::add_match(yara, "$a", 100, "PowerShell -enc");
        a.push_back(yara);
        Alert mapped = with_addresses(make_alert("s2", base_ns() + 3 * kMinuteNs, 4),
                                      "::ffff:10.0.0.7", "172.16.0.1");
        mapped.network->proto = "ICMP";
        a.push_back(mapped);
        Alert file = make_alert("s3", base_ns() + 4 * kMinuteNs, 1);
        file.kind = common::AlertKind::kFile;
        file.network.reset();
        file.source = common::RuleSource::kYara;
        file.rule = "Webshell_PHP";
        file.file = common::FileContext{"/var/www/x.php", 120, std::string(64, 'a'), "", ""};
        common::add_match(file, "$eval", 7, "eval(base64_decode(");
        a.push_back(file);
        Alert local =
            with_addresses(make_alert("s3", base_ns() + 5 * kMinuteNs, 3), "fe80::1", "ff02::1");
        local.network->proto = "udp";
        a.push_back(local);
        for (const Alert& x : a) EXPECT_TRUE(common::validate(x).ok()) << x.rule;
        auto inserted = store_->insert(a);
        EXPECT_TRUE(inserted.ok()) << inserted.error().message;
        return a;
    }

    std::vector<std::string> ids(const AlertQuery& q) {
        auto result = store_->query(q);
        EXPECT_TRUE(result.ok()) << result.error().message;
        return result.ok() ? ids_of(*result) : std::vector<std::string>{};
    }
};

INSTANTIATE_TEST_SUITE_P(Backends, AlertListStoreTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

TEST_P(AlertListStoreTest, FiltersByRuleSourceAndProtocol) {
    const auto a = seed();
    AlertQuery q;
    q.rule = "ET MALWARE Evil-Download";
    EXPECT_EQ(ids(q), ids_of({a[2]}));
    q.rule = "ET MALWARE";  // exact, not a prefix
    EXPECT_TRUE(ids(q).empty());

    q = AlertQuery{};
    q.source = "yara";
    EXPECT_EQ(ids(q), ids_of({a[4], a[2]}));
    q.source = "intel";
    EXPECT_EQ(ids(q), ids_of({a[1]}));

    q = AlertQuery{};
    q.proto = "udp";  // either case, on both sides
    EXPECT_EQ(ids(q), ids_of({a[5], a[1]}));
    q.proto = "TCP";
    EXPECT_EQ(ids(q), ids_of({a[2], a[0]}));
    q.source = "policy";
    EXPECT_EQ(ids(q), ids_of({a[0]}));
}

TEST_P(AlertListStoreTest, FiltersByAddressesAndCidrBlocks) {
    const auto a = seed();
    auto where = [&](std::optional<AddressRange> AlertQuery::*field, const std::string& text) {
        AlertQuery q;
        q.*field = range(text);
        return ids(q);
    };
    // One address is a /32 or /128.
    EXPECT_EQ(where(&AlertQuery::src, "10.0.0.5"), ids_of({a[0]}));
    EXPECT_EQ(where(&AlertQuery::src, "10.0.0.5/32"), ids_of({a[0]}));
    EXPECT_TRUE(where(&AlertQuery::src, "10.0.0.6/32").empty());
    EXPECT_EQ(where(&AlertQuery::dest, "10.0.1.20"), ids_of({a[1], a[0]}));
    // A v4-mapped address written as IPv6 is the IPv4 address.
    EXPECT_EQ(where(&AlertQuery::src, "10.0.0.0/8"), ids_of({a[3], a[0]}));
    EXPECT_EQ(where(&AlertQuery::src, "::ffff:10.0.0.0/104"), ids_of({a[3], a[0]}));
    EXPECT_EQ(where(&AlertQuery::src, "10.0.0.7"), ids_of({a[3]}));
    // /0: every IPv4 address; ::/0 every address, IPv4 ones being mapped into it.
    EXPECT_EQ(where(&AlertQuery::src, "0.0.0.0/0"), ids_of({a[3], a[1], a[0]}));
    EXPECT_EQ(where(&AlertQuery::src, "::/0"), ids_of({a[5], a[3], a[2], a[1], a[0]}));
    // IPv6 blocks and /128.
    EXPECT_EQ(where(&AlertQuery::src, "2001:db8::/32"), ids_of({a[2]}));
    EXPECT_EQ(where(&AlertQuery::dest, "2001:db8:0:1::/64"), ids_of({a[2]}));
    EXPECT_TRUE(where(&AlertQuery::dest, "2001:db8::/64").empty());
    EXPECT_EQ(where(&AlertQuery::src, "2001:db8::1/128"), ids_of({a[2]}));
    EXPECT_EQ(where(&AlertQuery::src, "fe80::/10"), ids_of({a[5]}));
    // Either side.
    EXPECT_EQ(where(&AlertQuery::ip, "10.0.0.0/8"), ids_of({a[3], a[1], a[0]}));
    EXPECT_EQ(where(&AlertQuery::ip, "172.16.0.0/12"), ids_of({a[3]}));
    EXPECT_EQ(where(&AlertQuery::ip, "ff00::/8"), ids_of({a[5]}));
    // Combined with the other filters.
    AlertQuery q;
    q.ip = range("10.0.0.0/8");
    q.severities = {2, 3};
    EXPECT_EQ(ids(q), ids_of({a[1], a[0]}));
}

TEST_P(AlertListStoreTest, FreeTextFindsSignaturesAndMatchedStringsInAnyCase) {
    const auto a = seed();
    auto search = [&](const std::string& text) {
        AlertQuery q;
        q.text = text;
        return ids(q);
    };
    EXPECT_EQ(search("evil-down"), ids_of({a[2]}));
    EXPECT_EQ(search("EVIL-DOWN"), ids_of({a[2]}));
    EXPECT_EQ(search("powershell -ENC"), ids_of({a[2]}));  // a matched string
    EXPECT_EQ(search("base64_decode("), ids_of({a[4]}));   // LIKE's "_" is just a character
    EXPECT_EQ(search("test modbus"), ids_of({a[5], a[3], a[0]}));
    EXPECT_TRUE(search("evil download").empty());
    EXPECT_TRUE(search("%%%").empty());
    EXPECT_TRUE(search("\"x\" OR 1=1 --").empty());
    EXPECT_TRUE(search("' OR '1'='1").empty());
    EXPECT_EQ(store_->count().value(), 6U);

    AlertQuery q;
    q.text = "ab";
    EXPECT_EQ(store_->query(q).error().code, ErrorCode::kInvalidArgument);
    q.text = "abc\n";
    EXPECT_EQ(store_->query(q).error().code, ErrorCode::kInvalidArgument);
    q.text = std::string(kMaxSearchLength + 1, 'a');
    EXPECT_EQ(store_->query(q).error().code, ErrorCode::kInvalidArgument);
}

// Pages of two through every order, each continuing behind the last alert of the one before,
// over alerts that share time stamps and severities: together they are the whole order, each
// alert once.
TEST_P(AlertListStoreTest, KeysetPagesWalkEveryOrderAcrossEqualKeys) {
    std::vector<Alert> alerts;
    for (int i = 0; i < 9; ++i) {
        alerts.push_back(make_alert("s", base_ns() + (i / 3) * kMinuteNs, 1 + i % 2));
    }
    ASSERT_TRUE(store_->insert(alerts).ok());
    for (AlertSort sort : {AlertSort::kTimeDesc, AlertSort::kTimeAsc, AlertSort::kSeverityAsc,
                           AlertSort::kSeverityDesc}) {
        SCOPED_TRACE(static_cast<int>(sort));
        std::vector<Alert> expected = alerts;
        std::sort(expected.begin(), expected.end(), [&](const Alert& x, const Alert& y) {
            if (sort == AlertSort::kSeverityAsc && x.severity != y.severity) {
                return x.severity < y.severity;
            }
            if (sort == AlertSort::kSeverityDesc && x.severity != y.severity) {
                return x.severity > y.severity;
            }
            if (x.timestamp_ns != y.timestamp_ns) {
                return sort == AlertSort::kTimeAsc ? x.timestamp_ns < y.timestamp_ns
                                                   : x.timestamp_ns > y.timestamp_ns;
            }
            return x.id < y.id;
        });
        // Every alert has severity 1 or 2, so both filters select all of them; a list of
        // several severities in time order takes the per-severity path of the stores.
        for (const std::vector<int>& severities : {std::vector<int>{}, std::vector<int>{2, 1}}) {
            SCOPED_TRACE(severities.size());
            AlertQuery q;
            q.sort = sort;
            q.severities = severities;
            EXPECT_EQ(ids(q), ids_of(expected));
            q.limit = 2;
            std::vector<std::string> walked;
            for (int page = 0; page < 10; ++page) {
                auto got = store_->query(q);
                ASSERT_TRUE(got.ok()) << got.error().message;
                for (const Alert& x : *got) walked.push_back(x.id);
                if (got->size() < q.limit) break;
                const Alert& last = got->back();
                q.after = AlertPosition{last.timestamp_ns, last.severity, last.id};
            }
            EXPECT_EQ(walked, ids_of(expected));
        }
    }
}

// A database that has alerts from before the filter columns existed gets them filled when the
// migration runs: the migration is undone behind the store's back, then the store reopened.
TEST_P(AlertListStoreTest, MigrationFillsTheFilterColumnsOfOlderAlerts) {
    const auto a = seed();
    store_.reset();
    {
        Poco::Data::Session raw = backend_->raw();
        std::vector<std::string> undo;
        // Migration 7 (SQLite) / 6 (PostgreSQL), which comes after, is undone first.
        for (const char* sql :
             {"DROP TABLE alert_counts", "DROP TABLE alert_hour_counts",
              "DROP TABLE alert_minute_counts", "ALTER TABLE alerts DROP COLUMN target"}) {
            undo.emplace_back(sql);
        }
        if (backend_->name() == "sqlite") {
            undo.insert(undo.end(), {"DROP TABLE alerts_text", "DROP INDEX alerts_src_bin",
                                     "DROP INDEX alerts_dest_bin", "DROP INDEX alerts_rule_ts",
                                     "ALTER TABLE alerts DROP COLUMN src_bin",
                                     "ALTER TABLE alerts DROP COLUMN dest_bin",
                                     "ALTER TABLE alerts DROP COLUMN search_text",
                                     "DELETE FROM schema_version WHERE version >= 6"});
        } else {
            undo.insert(undo.end(), {"ALTER TABLE alerts DROP COLUMN src_bin, DROP COLUMN dest_bin,"
                                     " DROP COLUMN search_text",
                                     "DROP INDEX IF EXISTS alerts_rule_ts",
                                     "DELETE FROM schema_version WHERE version >= 5"});
        }
        for (const std::string& sql : undo) raw << sql, now;
    }
    reopen();
    AlertQuery q;
    q.ip = range("10.0.0.0/8");
    EXPECT_EQ(ids(q), ids_of({a[3], a[1], a[0]}));
    q = AlertQuery{};
    q.text = "powershell";
    EXPECT_EQ(ids(q), ids_of({a[2]}));
    q.text = "BASE64";
    EXPECT_EQ(ids(q), ids_of({a[4]}));
    // And new alerts are indexed as they come.
    Alert fresh =
        with_addresses(make_alert("s9", base_ns() + 9 * kMinuteNs, 1), "10.9.9.9", "10.0.1.20");
    fresh.rule = "Fresh PowerShell rule";
    ASSERT_TRUE(store_->insert({fresh}).ok());
    q.text = "powershell";
    EXPECT_EQ(ids(q), ids_of({fresh, a[2]}));
}

// SQLite answers free text either by walking the rows with LIKE or through the trigram
// index (SqliteOptions::text_scan_budget picks); both give the same alerts in the same order.
TEST(SqliteFreeText, TheWalkAndTheTrigramIndexAgree) {
    test::TempDir dir;
    const std::string path = dir.file("alerts.db");
    std::vector<Alert> alerts;
    // The last holds every trigram of "beacon-beta" but not the text: the index finds it, the
    // substring check must not.
    const std::vector<std::string> rules = {"Alpha_Beacon", "beta beacon", "GAMMA 100%_done",
                                            "delta \"quoted\" rule", "beacon-b, n-beta"};
    for (int i = 0; i < 40; ++i) {
        Alert a = make_alert("s", base_ns() + (i % 7) * kMinuteNs, 1 + i % 4);
        a.rule = rules[static_cast<std::size_t>(i) % rules.size()];
        if (i % 5 == 0) common::add_match(a, "$m", 1, "Beacon\x01\xfe");
        alerts.push_back(a);
    }
    {
        auto store = open_sqlite_store(path);
        ASSERT_TRUE(store.ok()) << store.error().message;
        ASSERT_TRUE((*store)->insert(alerts).ok());
    }
    auto walk = open_sqlite_store(path, SqliteOptions{std::chrono::hours(1)});
    auto index = open_sqlite_store(path, SqliteOptions{std::chrono::milliseconds(0)});
    ASSERT_TRUE(walk.ok() && index.ok());
    for (const char* text : {"beacon", "BEACON", "100%_", "0%_d", "\"quoted\"", "|01 fe|", "n|01",
                             "alpha_", "nothing here", "beacon-beta", "n-b", "on-"}) {
        for (AlertSort sort : {AlertSort::kTimeDesc, AlertSort::kSeverityAsc}) {
            SCOPED_TRACE(text);
            AlertQuery q;
            q.text = text;
            q.sort = sort;
            q.limit = 7;
            auto by_walk = (*walk)->query(q);
            auto by_index = (*index)->query(q);
            ASSERT_TRUE(by_walk.ok() && by_index.ok());
            EXPECT_EQ(ids_of(*by_walk), ids_of(*by_index));
            std::size_t expected = 0;
            for (const Alert& a : alerts) {
                if (alert_search_text(a).find(normalize_search(text)) != std::string::npos) {
                    ++expected;
                }
            }
            EXPECT_EQ(by_walk->size(), std::min<std::size_t>(expected, 7));
        }
    }
}

// Migration 8 rebuilds a database's positional trigram index without positions; the text
// filter through the index then finds what it found before.
TEST(SqliteFreeText, MigrationRebuildsThePositionalIndex) {
    test::TempDir dir;
    const std::string path = dir.file("alerts.db");
    std::vector<Alert> alerts;
    for (int i = 0; i < 12; ++i) {
        Alert a = make_alert("s", base_ns() + i * kMinuteNs, 1 + i % 4);
        a.rule = i % 3 == 0 ? "Dropper beacon" : "Scanner sweep";
        alerts.push_back(a);
    }
    {
        auto store = open_sqlite_store(path);
        ASSERT_TRUE(store.ok()) << store.error().message;
        ASSERT_TRUE((*store)->insert(alerts).ok());
    }
    auto index_sql = [&] {
        Poco::Data::Session raw("SQLite", path);
        std::string sql;
        raw << "SELECT sql FROM sqlite_master WHERE name = 'alerts_text'",
            Poco::Data::Keywords::into(sql), now;
        return sql;
    };
    EXPECT_NE(index_sql().find("detail='none'"), std::string::npos);
    {  // Back to schema 7's index, as a database of the previous release has it.
        Poco::Data::Session raw("SQLite", path);
        raw << "DROP TABLE alerts_text", now;
        raw << "CREATE VIRTUAL TABLE alerts_text USING fts5(text, content='',"
               " tokenize='trigram case_sensitive 1')",
            now;
        raw << "INSERT INTO alerts_text (rowid, text) SELECT rowid, search_text FROM alerts", now;
        // Schema 9's metadata tables did not exist yet either.
        raw << "DROP TABLE metadata_values", now;
        raw << "DROP TABLE metadata", now;
        raw << "DELETE FROM schema_version WHERE version >= 8", now;
    }
    ASSERT_EQ(index_sql().find("detail='none'"), std::string::npos);
    auto index = open_sqlite_store(path, SqliteOptions{std::chrono::milliseconds(0)});
    ASSERT_TRUE(index.ok()) << index.error().message;
    EXPECT_NE(index_sql().find("detail='none'"), std::string::npos);
    AlertQuery q;
    q.text = "dropper BEACON";
    auto found = (*index)->query(q);
    ASSERT_TRUE(found.ok()) << found.error().message;
    EXPECT_EQ(found->size(), 4U);
    for (const Alert& a : *found) EXPECT_EQ(a.rule, "Dropper beacon");
}

TEST(AddressRange, ParsesAddressesAndBlocks) {
    auto r = parse_address_range("10.0.0.0/8");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->low, (std::array<std::uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0,
                                                    0, 0}));
    EXPECT_EQ(r->high, (std::array<std::uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10,
                                                     255, 255, 255}));
    EXPECT_EQ(parse_address_range("10.0.0.0/8").value(),
              parse_address_range("::ffff:10.0.0.0/104").value());
    EXPECT_EQ(parse_address_range("10.1.2.3").value().low,
              parse_address_range("10.1.2.3").value().high);
    auto all = parse_address_range("::/0");
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->low, (std::array<std::uint8_t, 16>{}));
    std::array<std::uint8_t, 16> ones{};
    ones.fill(0xff);
    EXPECT_EQ(all->high, ones);
    EXPECT_TRUE(parse_address_range("2001:db8::1/128").ok());
    EXPECT_TRUE(parse_address_range("0.0.0.0/0").ok());
    for (const char* bad : {"", "10.0.0", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/",
                            "10.0.0.5/8", "2001:db8::/129", "2001:db8::1/64", "::ffff:10.0.0.1/96",
                            "host.example", "10.0.0.0/8/8", "10.0.0.0 /8", "1.2.3.4/08x"}) {
        SCOPED_TRACE(bad);
        auto parsed = parse_address_range(bad);
        ASSERT_FALSE(parsed.ok());
        EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    }
}

TEST(AlertSearchText, IsTheSignatureAndMatchedStringsLowerCased) {
    Alert a = make_alert("s", base_ns(), 1);
    a.rule = "ET Evil";
    common::add_match(a, "$a", 0, std::string("Ab\x01", 3));
    EXPECT_EQ(alert_search_text(a), "et evil\nab|01|");
    EXPECT_EQ(normalize_search("PowerShell ÄÖ"), "powershell ÄÖ");
}

}  // namespace
}  // namespace senningen::collector
