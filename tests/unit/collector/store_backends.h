// The AlertStore backends the shared store tests run against (store_test.cc): each gives a
// fresh, empty database per test, opens the store on it (again, to test reopening), and a raw
// connection for looking behind the store's back.
//
// PostgreSQL needs a server: SENNINGEN_TEST_POSTGRES_URL names one (scripts/test starts a
// throw-away server and sets it). Each test gets a database of its own on it, dropped at the
// end, so tests can run in parallel. Without the variable the PostgreSQL tests skip.
#pragma once

#include <Poco/Data/PostgreSQL/Connector.h>
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "senningen/collector/postgres_store.h"
#include "senningen/collector/sqlite_store.h"
#include "test_alerts.h"

namespace senningen::collector::test {

inline constexpr const char* kPostgresUrlVariable = "SENNINGEN_TEST_POSTGRES_URL";

class StoreBackend {
public:
    virtual ~StoreBackend() = default;
    // Non-empty: the tests on this backend skip, saying why.
    virtual std::string skip_reason() const { return {}; }
    virtual common::Result<std::unique_ptr<AlertStore>> open() = 0;
    // An independent connection to the same database.
    virtual Poco::Data::Session raw() = 0;
    virtual std::string name() const = 0;
    virtual int schema_version() const = 0;
    // The migrations a new database gets, in order.
    virtual std::vector<int> migration_versions() const = 0;
    // The migration that made the hourly and per-minute totals and the grouping targets.
    virtual int rollup_migration() const = 0;
    // SQL counting the alerts table's three query indexes.
    virtual std::string count_alert_indexes_sql() const = 0;
    // SQL that leaves the stored alert ID (a UUID the test made) undecodable.
    virtual std::string corrupt_alert_sql(const std::string& id) const = 0;
};

class SqliteBackend final : public StoreBackend {
public:
    common::Result<std::unique_ptr<AlertStore>> open() override { return open_sqlite_store(path_); }
    Poco::Data::Session raw() override { return {"SQLite", path_}; }
    std::string name() const override { return "sqlite"; }
    int schema_version() const override { return kSqliteSchemaVersion; }
    std::vector<int> migration_versions() const override { return {1, 2, 3, 4, 5, 6, 7, 8, 9}; }
    int rollup_migration() const override { return 7; }
    std::string count_alert_indexes_sql() const override {
        return "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'alerts'"
               " AND name IN ('alerts_ts', 'alerts_agent_ts', 'alerts_severity_ts')";
    }
    // SQLite rows hold the compact record format (schema 3): a format byte no build reads.
    std::string corrupt_alert_sql(const std::string& id) const override {
        return "UPDATE alerts SET body = x'01ff00' WHERE id = '" + id + "'";
    }

private:
    TempDir dir_;
    std::string path_ = dir_.file("alerts.db");
};

class PostgresBackend final : public StoreBackend {
public:
    PostgresBackend() {
        const char* url = std::getenv(kPostgresUrlVariable);
        if (url == nullptr || *url == '\0') {
            skip_ = std::string(kPostgresUrlVariable) +
                    " is not set: no PostgreSQL server to test against (scripts/test starts "
                    "one and sets it)";
            return;
        }
        auto keywords = postgres_keyword_string(url);
        if (!keywords) {
            skip_ = "bad " + std::string(kPostgresUrlVariable) + ": " + keywords.error().message;
            return;
        }
        admin_ = *keywords;
        Poco::Data::PostgreSQL::Connector::registerConnector();
        // A UUID without dashes: a valid identifier, unique across parallel test processes.
        std::string uuid = common::new_uuid();
        std::erase(uuid, '-');
        database_ = "senningen_t_" + uuid;
        Poco::Data::Session admin("PostgreSQL", admin_);
        admin << "CREATE DATABASE " + database_, Poco::Data::Keywords::now;
        created_ = true;
    }
    ~PostgresBackend() override {
        if (!created_) return;
        try {
            Poco::Data::Session admin("PostgreSQL", admin_);
            admin << "DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)",
                Poco::Data::Keywords::now;
        } catch (...) {  // NOLINT(bugprone-empty-catch): a leftover test database harms nothing
        }
    }
    std::string skip_reason() const override { return skip_; }
    // The test database's connection string (later keywords win in libpq's parse).
    std::string conninfo() const { return admin_ + " dbname=" + database_; }
    common::Result<std::unique_ptr<AlertStore>> open() override {
        return open_postgres_store(conninfo());
    }
    Poco::Data::Session raw() override { return {"PostgreSQL", conninfo()}; }
    std::string name() const override { return "postgresql"; }
    int schema_version() const override { return kPostgresSchemaVersion; }
    std::vector<int> migration_versions() const override { return {1, 2, 3, 4, 5, 6, 7}; }
    int rollup_migration() const override { return 6; }
    std::string count_alert_indexes_sql() const override {
        return "SELECT count(*) FROM pg_indexes WHERE tablename = 'alerts'"
               " AND indexname IN ('alerts_ts', 'alerts_agent_ts', 'alerts_severity_ts')";
    }
    std::string corrupt_alert_sql(const std::string& id) const override {
        return "UPDATE alerts SET eve = '{\"timestamp\": broken' WHERE id = '" + id + "'";
    }

private:
    std::string skip_;
    std::string admin_;
    std::string database_;
    bool created_ = false;
};

struct BackendParam {
    std::string name;
    std::function<std::unique_ptr<StoreBackend>()> make;
};

// For gtest's messages: the backend's name, not the bytes of the struct.
inline void PrintTo(const BackendParam& param, std::ostream* os) {
    *os << param.name;
}

inline std::vector<BackendParam> all_backends() {
    return {{"sqlite", [] { return std::make_unique<SqliteBackend>(); }},
            {"postgresql", [] { return std::make_unique<PostgresBackend>(); }}};
}

inline std::string backend_param_name(const ::testing::TestParamInfo<BackendParam>& info) {
    return info.param.name;
}

// Tests over every backend: INSTANTIATE_TEST_SUITE_P(Backends, FooTest,
// ::testing::ValuesIn(test::all_backends()), test::backend_param_name).
class BackendTest : public ::testing::TestWithParam<BackendParam> {
protected:
    // A fresh store on the test's backend in store_; skips when the backend is unavailable.
    void SetUp() override {
        backend_ = GetParam().make();
        if (std::string reason = backend_->skip_reason(); !reason.empty()) GTEST_SKIP() << reason;
        reopen();
    }
    void TearDown() override { store_.reset(); }

    // Closes the store and opens it again on the same database.
    void reopen() {
        store_.reset();
        auto opened = backend_->open();
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        store_ = std::move(opened).value();
    }

    std::unique_ptr<StoreBackend> backend_;
    std::unique_ptr<AlertStore> store_;
};

}  // namespace senningen::collector::test
