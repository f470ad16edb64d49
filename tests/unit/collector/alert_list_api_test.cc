// GET /api/v1/alerts's filters, sort and cursor, and GET /api/v1/alerts/export, over every
// store backend (store_backends.h): parameters and their 400s, cursor round trips and
// tampering, exports streamed in chunks over more than one page, CSV quoting.
#include <Poco/Data/Session.h>
#include <Poco/JSON/Array.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "api_accounts.h"
#include "api_fixture.h"
#include "senningen/common/json_codec.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::Alert;
using test::base_ns;
using test::ids_of;
using test::kMinuteNs;
using test::make_alert;

using Response = test::ApiResponse;
using test::Parameters;

std::string target(const std::string& path, const Parameters& parameters) {
    return test::api_target(path, parameters);
}

std::vector<std::string> listed_ids(const Response& r) {
    Poco::JSON::Array::Ptr list = r.json()->getArray("alerts");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < list->size(); ++i) {
        out.push_back(list->getObject(static_cast<unsigned>(i))
                          ->getObject("alert")
                          ->getValue<std::string>("id"));
    }
    return out;
}

// RFC 4180 records: fields split at commas outside quotes, quotes undoubled, records at CRLF
// outside quotes. Enough of a reader to check what the export writes.
std::vector<std::vector<std::string>> read_csv(const std::string& text) {
    std::vector<std::vector<std::string>> rows(1);
    std::string field;
    bool quoted = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            rows.back().push_back(std::move(field));
            field.clear();
        } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            rows.back().push_back(std::move(field));
            field.clear();
            rows.emplace_back();
            ++i;
        } else {
            field += c;
        }
    }
    if (rows.back().empty()) rows.pop_back();
    return rows;
}

class AlertListApiTest : public test::ApiTest {
protected:
    void SetUp() override {
        ApiTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        authorization_ = test::add_token_account(*store_, "tester", Role::kAnalyst);
        start_server();
    }

    Response list(const Parameters& p) { return get(target("/api/v1/alerts", p)); }
    Response exported(const Parameters& p) { return get(target("/api/v1/alerts/export", p)); }

    void insert(const std::vector<Alert>& alerts) {
        auto inserted = store_->insert(alerts);
        ASSERT_TRUE(inserted.ok()) << inserted.error().message;
    }
};

INSTANTIATE_TEST_SUITE_P(Backends, AlertListApiTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

TEST_P(AlertListApiTest, FiltersByEveryNewParameter) {
    Alert v4 = make_alert("s1", base_ns(), 2);
    Alert v6 = make_alert("s1", base_ns() + kMinuteNs, 1);
    v6.network->src_ip = "2001:db8::7";
    v6.network->dest_ip = "2001:db8:1::9";
    v6.network->proto = "UDP";
    v6.rule = "ET EXPLOIT Weird-Thing";
    v6.source = common::RuleSource::kYara;
    common::add_match(v6, "$x", 3, "cmd.exe /c whoami");
    insert({v4, v6});

    const std::vector<std::pair<Parameters, std::vector<std::string>>> cases = {
        {{{"rule", "ET EXPLOIT Weird-Thing"}}, ids_of({v6})},
        {{{"rule", v4.rule}}, ids_of({v4})},
        {{{"source", "yara"}}, ids_of({v6})},
        {{{"source", "policy"}}, ids_of({v4})},
        {{{"source", "intel"}}, {}},
        {{{"proto", "tcp"}}, ids_of({v4})},
        {{{"proto", "UDP"}}, ids_of({v6})},
        {{{"src", "10.0.0.5"}}, ids_of({v4})},
        {{{"src", "10.0.0.0/24"}}, ids_of({v4})},
        {{{"src", "10.0.1.0/24"}}, {}},
        {{{"dest", "10.0.1.0/24"}}, ids_of({v4})},
        {{{"ip", "10.0.1.20"}}, ids_of({v4})},
        {{{"ip", "2001:db8::/32"}}, ids_of({v6})},
        {{{"dest", "2001:db8:1::9/128"}}, ids_of({v6})},
        {{{"ip", "::/0"}}, ids_of({v6, v4})},
        {{{"ip", "0.0.0.0/0"}}, ids_of({v4})},
        {{{"q", "WHOAMI"}}, ids_of({v6})},
        {{{"q", "weird-thing"}}, ids_of({v6})},
        {{{"q", "modbus write"}}, ids_of({v4})},
        {{{"q", "no such text"}}, {}},
        {{{"ip", "0.0.0.0/0"}, {"q", "coil"}, {"proto", "TCP"}, {"source", "policy"}},
         ids_of({v4})},
        {{{"sort", "timestamp"}}, ids_of({v4, v6})},
        {{{"sort", "-timestamp"}}, ids_of({v6, v4})},
        {{{"sort", "severity"}}, ids_of({v6, v4})},
        {{{"sort", "-severity"}}, ids_of({v4, v6})},
    };
    for (const auto& [parameters, expected] : cases) {
        const std::string t = target("/api/v1/alerts", parameters);
        SCOPED_TRACE(t);
        Response r = get(t);
        ASSERT_EQ(r.status, 200) << r.body;
        EXPECT_EQ(listed_ids(r), expected);
        EXPECT_TRUE(r.json()->isNull("next_cursor"));
    }
}

TEST_P(AlertListApiTest, BadValuesAreProblemsNamingTheParameter) {
    const std::vector<std::pair<Parameters, std::string>> cases = {
        {{{"rule", ""}}, "parameter 'rule'"},
        {{{"rule", std::string(1025, 'r')}}, "parameter 'rule'"},
        {{{"source", "snort"}}, "parameter 'source'"},
        {{{"source", "YARA"}}, "parameter 'source'"},
        {{{"proto", ""}}, "parameter 'proto'"},
        {{{"proto", std::string(33, 'p')}}, "parameter 'proto'"},
        {{{"src", "10.0.0.256"}}, "parameter 'src'"},
        {{{"src", "10.0.0.0/33"}}, "parameter 'src'"},
        {{{"src", "10.0.0.5/8"}}, "bits set beyond"},
        {{{"dest", "2001:db8::/129"}}, "parameter 'dest'"},
        {{{"dest", "fe80::1%eth0"}}, "parameter 'dest'"},
        {{{"ip", "example.org"}}, "parameter 'ip'"},
        {{{"ip", ""}}, "parameter 'ip'"},
        {{{"ip", "10.0.0.0/8"}, {"ip", "10.0.0.0/8"}}, "'ip' is given more than once"},
        {{{"q", "ab"}}, "parameter 'q'"},
        {{{"q", "abc\x01"}}, "parameter 'q'"},
        {{{"q", std::string(257, 'q')}}, "parameter 'q'"},
        {{{"sort", "newest"}}, "parameter 'sort'"},
        {{{"sort", "Severity"}}, "parameter 'sort'"},
        {{{"cursor", "abc"}}, "parameter 'cursor'"},
        {{{"cursor", ""}}, "parameter 'cursor'"},
        {{{"cursor", "x"}, {"cursor", "y"}}, "'cursor' is given more than once"},
    };
    for (const auto& [parameters, detail] : cases) {
        const std::string t = target("/api/v1/alerts", parameters);
        SCOPED_TRACE(t);
        Response r = get(t);
        EXPECT_EQ(r.status, 400) << r.body;
        EXPECT_EQ(r.content_type, "application/problem+json");
        EXPECT_NE(r.detail().find(detail), std::string::npos) << r.detail();
    }
}

// Pages through alerts that share one time stamp: the cursors carry on exactly where the page
// before ended, in every sort, until a page is not full.
TEST_P(AlertListApiTest, CursorWalksEveryAlertOnceAcrossEqualTimestamps) {
    std::vector<Alert> alerts;
    for (int i = 0; i < 7; ++i) alerts.push_back(make_alert("s", base_ns(), 1 + i % 3));
    alerts.push_back(make_alert("s", base_ns() - kMinuteNs, 4));
    insert(alerts);
    for (const char* sort : {"-timestamp", "timestamp", "severity", "-severity"}) {
        SCOPED_TRACE(sort);
        Response all = list({{"sort", sort}, {"severity", "1,2,3,4"}});
        ASSERT_EQ(all.status, 200) << all.body;
        const std::vector<std::string> expected = listed_ids(all);
        ASSERT_EQ(expected.size(), alerts.size());

        std::vector<std::string> walked;
        Parameters p = {{"sort", sort}, {"severity", "1,2,3,4"}, {"limit", "3"}};
        for (int page = 0; page < 5; ++page) {
            Response r = list(p);
            ASSERT_EQ(r.status, 200) << r.body;
            for (const std::string& id : listed_ids(r)) walked.push_back(id);
            if (r.json()->isNull("next_cursor")) break;
            // The page size may change between pages; the filters may not.
            p = {{"limit", page == 0 ? "2" : "3"},
                 {"severity", "1,2,3,4"},
                 {"sort", sort},
                 {"cursor", r.json()->getValue<std::string>("next_cursor")}};
        }
        EXPECT_EQ(walked, expected);
        EXPECT_EQ(std::set<std::string>(walked.begin(), walked.end()).size(), walked.size());
    }
}

TEST_P(AlertListApiTest, TamperedOrMovedCursorIsA400) {
    std::vector<Alert> alerts;
    for (int i = 0; i < 4; ++i) alerts.push_back(make_alert("s", base_ns() + i, 2));
    insert(alerts);
    Response first = list({{"limit", "2"}, {"agent", "s"}});
    ASSERT_EQ(first.status, 200) << first.body;
    const std::string cursor = first.json()->getValue<std::string>("next_cursor");
    ASSERT_FALSE(cursor.empty());
    EXPECT_EQ(list({{"limit", "2"}, {"agent", "s"}, {"cursor", cursor}}).status, 200);

    // Any changed character, in the position or in the MAC.
    for (std::size_t i : {std::size_t{0}, std::size_t{2}, cursor.size() / 2, cursor.size() - 1}) {
        std::string bad = cursor;
        bad[i] = bad[i] == '1' ? '2' : '1';
        SCOPED_TRACE(bad);
        Response r = list({{"limit", "2"}, {"agent", "s"}, {"cursor", bad}});
        EXPECT_EQ(r.status, 400) << r.body;
        EXPECT_NE(r.detail().find("parameter 'cursor'"), std::string::npos) << r.detail();
    }
    // The same cursor with other filters or another sort.
    EXPECT_EQ(list({{"limit", "2"}, {"cursor", cursor}}).status, 400);
    EXPECT_EQ(
        list({{"limit", "2"}, {"agent", "s"}, {"sort", "timestamp"}, {"cursor", cursor}}).status,
        400);
    EXPECT_EQ(list({{"limit", "2"}, {"agent", "s"}, {"severity", "2"}, {"cursor", cursor}}).status,
              400);
}

TEST_P(AlertListApiTest, ExportStreamsEveryMatchingAlertInChunksAsEveLines) {
    // More than one keyset page (kMaxQueryLimit alerts each), with equal time stamps across
    // the page boundary.
    std::vector<Alert> alerts;
    const std::size_t total = kMaxQueryLimit + 234;
    for (std::size_t i = 0; i < total; ++i) {
        alerts.push_back(make_alert(i % 2 ? "odd" : "even",
                                    base_ns() + static_cast<std::int64_t>(i / 5), 1 + i % 4));
    }
    insert(alerts);
    Response r = exported({{"format", "eve"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(r.chunked);
    EXPECT_EQ(r.content_type, "application/x-ndjson");
    EXPECT_TRUE(r.disposition.starts_with("attachment; filename=\"senningen-alerts-"))
        << r.disposition;
    EXPECT_TRUE(r.disposition.ends_with(".jsonl\"")) << r.disposition;
    std::istringstream lines(r.body);
    std::vector<std::string> ids;
    for (std::string line; std::getline(lines, line);) {
        auto alert = common::alert_from_json(line);
        ASSERT_TRUE(alert.ok()) << alert.error().message << ": " << line;
        ids.push_back(alert->id);
    }
    ASSERT_EQ(ids.size(), total);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), total);
    // In the list's order, the same as its pages.
    Response page = list({{"limit", "1000"}});
    ASSERT_EQ(page.status, 200);
    const std::vector<std::string> first_page = listed_ids(page);
    EXPECT_EQ(std::vector<std::string>(ids.begin(), ids.begin() + 1000), first_page);

    // The filters apply.
    Response odd = exported({{"format", "eve"}, {"agent", "odd"}, {"sort", "timestamp"}});
    ASSERT_EQ(odd.status, 200);
    EXPECT_EQ(static_cast<std::size_t>(std::count(odd.body.begin(), odd.body.end(), '\n')),
              total / 2);
}

// A damaged row makes its page short; the export carries on behind it all the same.
TEST_P(AlertListApiTest, ExportGoesOnPastADamagedRow) {
    std::vector<Alert> alerts;
    for (std::size_t i = 0; i < kMaxQueryLimit + 5; ++i) {
        alerts.push_back(make_alert("s", base_ns() - static_cast<std::int64_t>(i), 2));
    }
    insert(alerts);
    {
        Poco::Data::Session raw = backend_->raw();
        raw << backend_->corrupt_alert_sql(alerts[10].id), Poco::Data::Keywords::now;
    }
    Response r = exported({{"format", "eve"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(static_cast<std::size_t>(std::count(r.body.begin(), r.body.end(), '\n')),
              alerts.size() - 1);
    EXPECT_EQ(r.body.find(alerts[10].id), std::string::npos);
    EXPECT_NE(r.body.find(alerts.back().id), std::string::npos);
}

TEST_P(AlertListApiTest, CsvExportQuotesAndDefusesFormulas) {
    Alert a = make_alert("sensor,1", base_ns(), 1);
    a.rule = "=HYPERLINK(\"http://x\",\"click\")";
    a.category = "line one\nline \"two\"";
    a.pack_version = "@SUM(A1)";
    common::add_match(a, "$a", 5, "-2+3");
    common::add_match(a, "$b", 9, std::string("\x00\xff", 2));
    Alert b = make_alert("plain", base_ns() - 1, 4);
    insert({a, b});
    ASSERT_TRUE(
        store_->update_triage({b.id}, TriageChange{"escalated", "tester"}, "tester", 1).ok());

    Response r = exported({{"format", "csv"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(r.chunked);
    EXPECT_EQ(r.content_type, "text/csv; charset=utf-8; header=present");
    EXPECT_TRUE(r.disposition.ends_with(".csv\"")) << r.disposition;
    const auto rows = read_csv(r.body);
    ASSERT_EQ(rows.size(), 3U) << r.body;
    const std::vector<std::string>& header = rows[0];
    ASSERT_EQ(header.size(), 23U);
    EXPECT_EQ(header[0], "timestamp");
    EXPECT_EQ(header[4], "signature");
    EXPECT_EQ(header[21], "status");
    for (const auto& row : rows) ASSERT_EQ(row.size(), header.size()) << r.body;
    auto cell = [&](std::size_t row, const std::string& name) {
        const auto at = std::find(header.begin(), header.end(), name);
        return rows[row][static_cast<std::size_t>(at - header.begin())];
    };
    EXPECT_EQ(cell(1, "id"), a.id);
    EXPECT_EQ(cell(1, "agent"), "sensor,1");
    EXPECT_EQ(cell(1, "signature"), "'=HYPERLINK(\"http://x\",\"click\")");
    EXPECT_EQ(cell(1, "category"), "line one\nline \"two\"");
    EXPECT_EQ(cell(1, "pack"), "'@SUM(A1)");
    EXPECT_EQ(cell(1, "matches"), "$a@5 -2+3\n$b@9 |00 ff|");
    EXPECT_EQ(cell(1, "src_ip"), "10.0.0.5");
    EXPECT_EQ(cell(1, "dest_port"), "502");
    EXPECT_EQ(cell(1, "status"), "new");
    EXPECT_EQ(cell(2, "id"), b.id);
    EXPECT_EQ(cell(2, "status"), "escalated");
    EXPECT_EQ(cell(2, "assignee"), "tester");
    // The raw text: the quoted cell and the doubled quotes as RFC 4180 has them.
    EXPECT_NE(r.body.find(",\"'=HYPERLINK(\"\"http://x\"\",\"\"click\"\")\","), std::string::npos)
        << r.body;
    EXPECT_TRUE(r.body.ends_with("\r\n"));
}

TEST_P(AlertListApiTest, ExportRefusesBadParametersAndNeedsAnAccount) {
    const std::vector<std::pair<Parameters, std::string>> cases = {
        {{{"format", "xml"}}, "parameter 'format'"},
        {{{"format", "csv"}, {"format", "eve"}}, "'format' is given more than once"},
        {{{"format", "csv"}, {"limit", "5"}}, "parameter 'limit'"},
        {{{"format", "csv"}, {"cursor", "x"}}, "parameter 'cursor'"},
        {{{"format", "csv"}, {"src", "1.2.3.4/40"}}, "parameter 'src'"},
        {{{"format", "eve"}, {"colour", "red"}}, "parameter 'colour'"},
    };
    for (const auto& [parameters, detail] : cases) {
        const std::string t = target("/api/v1/alerts/export", parameters);
        SCOPED_TRACE(t);
        Response r = get(t);
        EXPECT_EQ(r.status, 400) << r.body;
        EXPECT_NE(r.detail().find(detail), std::string::npos) << r.detail();
    }
    // Without a format: EVE lines.
    Response eve = get("/api/v1/alerts/export");
    EXPECT_EQ(eve.status, 200);
    EXPECT_EQ(eve.content_type, "application/x-ndjson");
    EXPECT_EQ(get("/api/v1/alerts/export?format=csv", "Bearer snt_wrong").status, 401);
    // Every role that reads alerts may export: here a rule author.
    const std::string author = test::add_token_account(*store_, "writer", Role::kRuleAuthor);
    EXPECT_EQ(get("/api/v1/alerts/export?format=csv", author).status, 200);
}

// A store whose query() answers from a real one the first time and fails afterwards: an
// export that loses its store after the first page.
class FailsAfterFirstQuery final : public AlertStore {
public:
    explicit FailsAfterFirstQuery(AlertStore& real) : real_(real) {}
    common::Result<InsertResult> insert(const std::vector<Alert>& alerts) override {
        return real_.insert(alerts);
    }
    common::Result<std::vector<Alert>> query(const AlertQuery& q) override {
        if (queries_++ == 0) return real_.query(q);
        return common::make_error(common::ErrorCode::kDatabase, "the disk went away");
    }
    common::Result<std::uint64_t> count() override { return real_.count(); }
    std::uint64_t undecodable_rows() const override { return 0; }
    std::string backend_name() const override { return "failing"; }
    common::Result<std::optional<UserAccount>> token_user(const std::string& /*digest*/,
                                                          std::int64_t /*now_ns*/) override {
        return std::optional<UserAccount>(UserAccount{"tester", Role::kAnalyst, "", 0, false});
    }

private:
    AlertStore& real_;
    std::atomic<int> queries_{0};
};

// Over a raw socket, to see the chunked framing: the first page arrives, the final empty
// chunk never does, and the connection is closed.
TEST(AlertExportFailure, CutsTheConnectionInsteadOfEndingTheChunks) {
    common::set_log_level(common::LogLevel::kOff);
    test::TempDir dir;
    auto real = open_sqlite_store(dir.file("alerts.db"));
    ASSERT_TRUE(real.ok()) << real.error().message;
    std::vector<Alert> alerts;
    for (std::size_t i = 0; i < kMaxQueryLimit + 1; ++i) {
        alerts.push_back(make_alert("s", base_ns() + static_cast<std::int64_t>(i), 2));
    }
    ASSERT_TRUE((*real)->insert(alerts).ok());
    FailsAfterFirstQuery store(**real);
    ApiServer server(store, ApiOptions{});
    auto port = server.start();
    ASSERT_TRUE(port.ok()) << port.error().message;

    Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", *port));
    socket.setReceiveTimeout(Poco::Timespan(20, 0));
    const std::string request =
        "GET /api/v1/alerts/export?format=eve HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer snt_any\r\nConnection: close\r\n\r\n";
    socket.sendBytes(request.data(), static_cast<int>(request.size()));
    std::string received;
    char buffer[65536];
    for (int n = 0; (n = socket.receiveBytes(buffer, sizeof buffer)) > 0;) {
        received.append(buffer, static_cast<std::size_t>(n));
    }
    EXPECT_TRUE(received.starts_with("HTTP/1.1 200")) << received.substr(0, 200);
    EXPECT_NE(received.find("Transfer-Encoding: chunked"), std::string::npos);
    EXPECT_NE(received.find(alerts.back().id), std::string::npos);  // the newest, on page one
    EXPECT_FALSE(received.ends_with("\r\n0\r\n\r\n")) << received.substr(received.size() - 40);
    server.stop();
}

}  // namespace
}  // namespace senningen::collector
