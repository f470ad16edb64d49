// The CA (collector/src/pki), the enrollment bundle and the message credentials
// (common/identity.h) together: what the collector issues is what it accepts, and nothing else.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "alert_factory.h"
#include "senningen/collector/ca.h"
#include "senningen/common/enrollment.h"
#include "senningen/common/identity.h"
#include "senningen/common/record_codec.h"

namespace senningen::collector {
namespace {

using common::ErrorCode;

class IdentityTest : public ::testing::Test {
protected:
    void SetUp() override {
        char dir_template[] = "/tmp/senningen-pki-XXXXXX";
        ASSERT_NE(::mkdtemp(dir_template), nullptr);
        dir_ = dir_template;
        ca_ = dir_ + "/ca";
        ASSERT_TRUE(init_ca(ca_, 30).ok());
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    // Issues NAME from CA_DIR with the given window and writes key and certificate files.
    std::unique_ptr<common::Signer> signer(const std::string& name, const std::string& ca_dir,
                                           std::int64_t from, std::int64_t to) {
        auto issued = issue_agent_certificate(ca_dir, name, from, to);
        EXPECT_TRUE(issued.ok()) << (issued.ok() ? "" : issued.error().message);
        const std::string base = dir_ + "/" + name + "-" + std::to_string(++files_);
        std::ofstream(base + ".crt") << issued->certificate_pem;
        std::ofstream(base + ".key") << issued->key_pem;
        auto s = common::Signer::load(base + ".crt", base + ".key");
        EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
        return std::move(s).value();
    }
    std::unique_ptr<common::Signer> valid_signer(const std::string& name) {
        const std::int64_t now = std::time(nullptr);
        return signer(name, ca_, now - 60, now + 86400);
    }
    std::unique_ptr<common::PeerVerifier> verifier() {
        const CaPaths p{ca_};
        auto v = common::PeerVerifier::create(p.ca_certificate(), p.crl());
        EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().message);
        return std::move(v).value();
    }
    static common::AlertBatch batch(const std::string& agent) {
        common::AlertBatch b;
        b.agent_id = agent;
        b.batch_id = 7;
        b.alerts = {testing::network_alert(agent), testing::file_alert(agent)};
        return b;
    }
    static std::string refusal(common::PeerVerifier& v, const common::AlertBatch& b) {
        auto r = v.verify(b);
        if (r.ok()) return "accepted as " + *r;
        EXPECT_EQ(r.error().code, ErrorCode::kDenied);
        return r.error().message;
    }

    std::string dir_;
    std::string ca_;
    int files_ = 0;
};

TEST_F(IdentityTest, ASignedBatchProvesTheCertificatesAgent) {
    auto s = valid_signer("plc-gw-1");
    EXPECT_EQ(s->common_name(), "plc-gw-1");
    auto b = batch("plc-gw-1");
    ASSERT_TRUE(s->sign(b).ok());
    auto v = verifier();
    auto who = v->verify(b);
    ASSERT_TRUE(who.ok()) << who.error().message;
    EXPECT_EQ(*who, "plc-gw-1");
    EXPECT_EQ(v->verify(b).value(), "plc-gw-1");  // the cached path too
}

TEST_F(IdentityTest, TheIdComesFromTheCertificateNotTheMessage) {
    auto s = valid_signer("agent-a");
    auto b = batch("agent-b");  // claims to be agent-b, signed by agent-a's key
    ASSERT_TRUE(s->sign(b).ok());
    EXPECT_EQ(verifier()->verify(b).value(), "agent-a");  // Ingest refuses the mismatch
}

TEST_F(IdentityTest, AnyChangeAfterSigningIsRefused) {
    auto s = valid_signer("agent-a");
    auto b = batch("agent-a");
    ASSERT_TRUE(s->sign(b).ok());
    auto v = verifier();
    auto tampered = b;
    tampered.alerts[0].severity = 1;
    EXPECT_NE(refusal(*v, tampered).find("bad signature"), std::string::npos);
    tampered = b;
    tampered.batch_id = 8;
    EXPECT_NE(refusal(*v, tampered).find("bad signature"), std::string::npos);
    EXPECT_NE(common::digest_of(b), common::digest_of(tampered));
}

// Version 3 batches are signed over the records the agent's queue holds, version 2 over the
// same encoding made from the alerts: one digest either way for one version, none shared
// between versions, and records that do not match the alerts do not verify.
TEST_F(IdentityTest, TheSignatureCoversTheWireVersionAndTheRecordsSent) {
    auto s = valid_signer("agent-a");
    auto v = verifier();
    auto b = batch("agent-a");
    common::AlertBatch with_records = b;
    for (const auto& a : b.alerts) with_records.records.push_back(common::encode_alert_record(a));
    EXPECT_EQ(common::digest_of(b), common::digest_of(with_records));
    ASSERT_TRUE(s->sign(with_records).ok());
    EXPECT_EQ(v->verify(with_records).value(), "agent-a");

    common::AlertBatch old = b;  // an agent of the previous release
    old.wire_version = 2;
    EXPECT_NE(common::digest_of(old), common::digest_of(b));
    ASSERT_TRUE(s->sign(old).ok());
    EXPECT_EQ(v->verify(old).value(), "agent-a");
    auto replayed_as_v3 = old;
    replayed_as_v3.wire_version = common::kAlertBatchWireVersion;
    EXPECT_NE(refusal(*v, replayed_as_v3).find("bad signature"), std::string::npos);

    auto swapped = with_records;
    std::swap(swapped.records[0], swapped.records[1]);
    EXPECT_NE(refusal(*v, swapped).find("bad signature"), std::string::npos);
}

TEST_F(IdentityTest, NoCertificateIsRefused) {
    auto b = batch("agent-a");
    EXPECT_NE(refusal(*verifier(), b).find("no certificate"), std::string::npos);
    b.credentials.certificate = "garbage";
    EXPECT_NE(refusal(*verifier(), b).find("no readable certificate"), std::string::npos);
}

TEST_F(IdentityTest, ACertificateFromAnotherCaIsRefused) {
    ASSERT_TRUE(init_ca(dir_ + "/other", 30).ok());
    const std::int64_t now = std::time(nullptr);
    auto s = signer("agent-a", dir_ + "/other", now - 60, now + 86400);
    auto b = batch("agent-a");
    ASSERT_TRUE(s->sign(b).ok());
    EXPECT_NE(refusal(*verifier(), b).find("unable to get local issuer certificate"),
              std::string::npos);
}

TEST_F(IdentityTest, AnExpiredCertificateIsRefused) {
    const std::int64_t now = std::time(nullptr);
    auto s = signer("agent-old", ca_, now - 10 * 86400, now - 86400);
    auto b = batch("agent-old");
    ASSERT_TRUE(s->sign(b).ok());
    EXPECT_NE(refusal(*verifier(), b).find("expired"), std::string::npos);
}

TEST_F(IdentityTest, RevocationTakesEffectAtTheNextMessage) {
    auto s = valid_signer("agent-r");
    auto b = batch("agent-r");
    ASSERT_TRUE(s->sign(b).ok());
    auto v = verifier();
    ASSERT_TRUE(v->verify(b).ok());
    // The CRL's file changes (mtime granularity aside, its size grows): the cache is dropped.
    auto revoked = revoke_agent(ca_, "agent-r");
    ASSERT_TRUE(revoked.ok()) << revoked.error().message;
    EXPECT_EQ(*revoked, 1u);
    EXPECT_NE(refusal(*v, b).find("revoked"), std::string::npos);
    // Others are unaffected.
    auto other = valid_signer("agent-s");
    auto ob = batch("agent-s");
    ASSERT_TRUE(other->sign(ob).ok());
    EXPECT_EQ(v->verify(ob).value(), "agent-s");
}

TEST_F(IdentityTest, HeartbeatsAreSignedAndCheckedToo) {
    auto s = valid_signer("agent-h");
    common::Heartbeat hb;
    hb.agent_id = "agent-h";
    hb.sequence = 3;
    hb.queue_depth = 12;
    ASSERT_TRUE(s->sign(hb).ok());
    auto v = verifier();
    EXPECT_EQ(v->verify(hb).value(), "agent-h");
    hb.queue_depth = 0;
    EXPECT_FALSE(v->verify(hb).ok());
}

TEST_F(IdentityTest, CaInitNeverOverwritesAndRevokeNamesTheUnknownAgent) {
    auto again = init_ca(ca_, 30);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message.find("already holds a CA"), std::string::npos);
    auto r = revoke_agent(ca_, "nobody");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
    EXPECT_NE(r.error().message.find("nobody"), std::string::npos);
    struct stat st {};
    ASSERT_EQ(::stat(CaPaths{ca_}.ca_key().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto bad = issue_agent_certificate(ca_, "../etc", 0, 1);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(IdentityTest, BundleRoundTripsAndIsChecked) {
    const std::int64_t now = std::time(nullptr);
    auto issued = issue_agent_certificate(ca_, "agent-b", now - 60, now + 86400).value();
    common::EnrollmentBundle b{"agent-b", "10.0.0.5:9999", issued.key_pem,
                               issued.certificate_pem, issued.ca_pem};
    auto parsed = common::parse_bundle(common::format_bundle(b), "agent-b.bundle");
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_EQ(parsed->agent, "agent-b");
    EXPECT_EQ(parsed->collector, "10.0.0.5:9999");
    EXPECT_EQ(parsed->certificate_pem, issued.certificate_pem);

    auto renamed = b;
    renamed.agent = "agent-c";
    auto r1 = common::parse_bundle(common::format_bundle(renamed), "x.bundle");
    ASSERT_FALSE(r1.ok());
    EXPECT_NE(r1.error().message.find("x.bundle"), std::string::npos);
    EXPECT_NE(r1.error().message.find("names 'agent-b'"), std::string::npos);

    ASSERT_TRUE(init_ca(dir_ + "/other", 30).ok());
    auto foreign = issue_agent_certificate(dir_ + "/other", "agent-b", now - 60, now + 86400);
    auto mixed = b;
    mixed.key_pem = foreign->key_pem;
    auto r2 = common::parse_bundle(common::format_bundle(mixed), "y.bundle");
    ASSERT_FALSE(r2.ok());
    EXPECT_NE(r2.error().message.find("does not belong"), std::string::npos);
    mixed = b;
    mixed.ca_pem = foreign->ca_pem;
    auto r3 = common::parse_bundle(common::format_bundle(mixed), "z.bundle");
    ASSERT_FALSE(r3.ok());
    EXPECT_NE(r3.error().message.find("does not verify"), std::string::npos);
    auto r4 = common::parse_bundle("hello\n", "w.bundle");
    ASSERT_FALSE(r4.ok());
}

}  // namespace
}  // namespace senningen::collector

namespace senningen::collector {
namespace {

// A metadata batch is signed over every record and its own tag: a record changed, added or
// dropped after signing is refused, and its signature proves nothing for an alert batch.
TEST_F(IdentityTest, MetadataBatchesAreSignedOverEveryRecord) {
    auto s = valid_signer("agent-a");
    auto v = verifier();
    common::MetadataBatch b;
    b.agent_id = "agent-a";
    b.batch_id = 9;
    b.records = {R"({"event_type":"dns","n":1})", R"({"event_type":"conn","n":2})"};
    ASSERT_TRUE(s->sign(b).ok());
    EXPECT_EQ(v->verify(b).value(), "agent-a");
    for (auto change : {+[](common::MetadataBatch& m) { m.records[1] += " "; },
                        +[](common::MetadataBatch& m) { m.records.pop_back(); },
                        +[](common::MetadataBatch& m) { m.records.push_back("{}"); },
                        +[](common::MetadataBatch& m) { m.batch_id = 10; }}) {
        auto tampered = b;
        change(tampered);
        auto r = v->verify(tampered);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.error().message.find("bad signature"), std::string::npos);
    }
    common::AlertBatch alerts;
    alerts.agent_id = "agent-a";
    alerts.batch_id = 9;
    EXPECT_NE(common::digest_of(alerts), common::digest_of(b));
}

}  // namespace
}  // namespace senningen::collector
