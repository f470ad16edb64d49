// TLS analyzer: SNI and JA3 from a ClientHello (GREASE ignored), the server's certificate
// chain parsed by OpenSSL, intel locations, and hostile or cut input.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "analyzer_harness.h"
#include "analyzers/tls/tls_analyzer.h"

namespace senningen::agent {
namespace {

using test::AnalyzerRun;

std::string be16(unsigned v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string be24(std::size_t v) {
    return {static_cast<char>(v >> 16), static_cast<char>((v >> 8) & 0xff),
            static_cast<char>(v & 0xff)};
}
std::string hs(int type, const std::string& body) {
    return std::string(1, static_cast<char>(type)) + be24(body.size()) + body;
}
std::string record(int type, const std::string& body) {
    return std::string(1, static_cast<char>(type)) + "\x03\x03" + be16(body.size()) + body;
}
std::string ext(unsigned type, const std::string& body) { return be16(type) + be16(body.size()) + body; }

std::string client_hello(const std::string& sni) {
    std::string exts = ext(0x1a1a, "") +
                       ext(0, be16(sni.size() + 3) + std::string(1, '\0') + be16(sni.size()) + sni) +
                       ext(10, be16(6) + be16(0x2a2a) + be16(29) + be16(23)) +
                       ext(11, std::string("\x01\x00", 2)) + ext(35, "");
    std::string body = "\x03\x03" + std::string(32, 'r') + std::string(1, '\0') + be16(8) +
                       be16(0x0a0a) + be16(0xc02f) + be16(0xc030) + be16(0x009c) +
                       std::string("\x01\x00", 2) + be16(exts.size()) + exts;
    return record(22, hs(1, body));
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string server_flight(const std::string& der) {
    const std::string server_hello =
        hs(2, "\x03\x03" + std::string(32, 's') + std::string(1, '\0') + be16(0xc02f) +
                  std::string(1, '\0') + be16(5) + ext(0xff01, std::string(1, '\0')));
    const std::string chain = be24(der.size()) + der;
    return record(22, server_hello) + record(22, hs(11, be24(chain.size()) + chain) + hs(14, ""));
}

const std::string kCertPath =
    std::string(SENNINGEN_SOURCE_DIR) + "/tests/golden/it-analyzers/server.der";

TEST(TlsAnalyzer, Ja3SkipsGreaseAndHashesWithMd5) {
    const std::string rec = client_hello("a.example");
    const auto body = std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(rec.data()) + 9, rec.size() - 9);
    EXPECT_EQ(ja3_string(body), "771,49199-49200-156,0-10-11-35,29-23,0");
    AnalyzerRun run("tls", kIpProtoTcp, 443);
    run.feed(0, rec);
    run.end();
    const auto tls = run.host.records_of("tls");
    ASSERT_EQ(tls.size(), 1U);
    // md5("771,49199-49200-156,0-10-11-35,29-23,0"), computed independently.
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    const std::string ja3 = "771,49199-49200-156,0-10-11-35,29-23,0";
    EVP_Digest(ja3.data(), ja3.size(), md, &len, EVP_md5(), nullptr);
    char hex[33] = {};
    for (unsigned i = 0; i < len; ++i) std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EXPECT_NE(tls[0].find(std::string("\"ja3_hash\":\"") + hex + "\""), std::string::npos) << tls[0];
    EXPECT_TRUE(run.host.saw("SSL::IN_SERVER_NAME", "a.example"));
}

TEST(TlsAnalyzer, CertificateChainParsedWithOpenSsl) {
    const std::string der = read_file(kCertPath);
    ASSERT_FALSE(der.empty()) << kCertPath;
    CertificateFacts facts;
    ASSERT_TRUE(parse_certificate({reinterpret_cast<const std::uint8_t*>(der.data()), der.size()},
                                  facts));
    EXPECT_EQ(facts.common_name, "portal.bad-vendor.example");
    EXPECT_EQ(facts.subject, "CN=portal.bad-vendor.example,O=Bad Vendor,C=NL");
    EXPECT_EQ(facts.san_dns,
              (std::vector<std::string>{"portal.bad-vendor.example", "www.bad-vendor.example"}));
    EXPECT_EQ(facts.san_email, std::vector<std::string>{"pki@bad-vendor.example"});
    EXPECT_EQ(facts.sha1.size(), 40U);
    EXPECT_EQ(facts.sha256.size(), 64U);

    AnalyzerRun run("tls", kIpProtoTcp, 443);
    run.feed(0, client_hello("portal.bad-vendor.example"));
    run.feed(1, server_flight(der), 7);  // records split anyhow
    run.feed(0, record(20, "\x01") + record(22, std::string(40, 'e')));
    run.feed(1, record(20, "\x01") + record(22, std::string(40, 'e')));
    run.end();
    EXPECT_TRUE(run.host.saw("X509::IN_CERT", facts.sha1));
    EXPECT_TRUE(run.host.saw("X509::IN_CERT", "www.bad-vendor.example"));
    EXPECT_TRUE(run.host.saw("X509::IN_CERT", "pki@bad-vendor.example"));
    const auto tls = run.host.records_of("tls");
    ASSERT_EQ(tls.size(), 1U);
    EXPECT_NE(tls[0].find("\"established\":true"), std::string::npos);
    EXPECT_NE(tls[0].find(facts.sha256), std::string::npos);
    EXPECT_NE(tls[0].find("\"version\":\"TLSv12\""), std::string::npos);
    EXPECT_TRUE(run.host.weirds.empty());
}

// A self-signed certificate whose subject carries an e-mail address (PKCS #9 emailAddress),
// made here with OpenSSL: Zeek's x509.zeek looks that address up at X509::IN_CERT.
std::string certificate_with_subject_email(const std::string& email) {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), EVP_PKEY_free);
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    if (!key || !cert) return {};
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_NAME* name = X509_get_subject_name(cert.get());
    const auto add = [&](const char* field, const std::string& value) {
        X509_NAME_add_entry_by_txt(name, field, MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0);
    };
    add("CN", "scada-gw.plant.example");
    add("emailAddress", email);
    X509_set_issuer_name(cert.get(), name);
    X509_set_pubkey(cert.get(), key.get());
    if (X509_sign(cert.get(), key.get(), nullptr) == 0) return {};
    unsigned char* der = nullptr;
    const int len = i2d_X509(cert.get(), &der);
    if (len <= 0) return {};
    std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return out;
}

TEST(TlsAnalyzer, TheSubjectsEmailAddressIsSeenAtX509InCert) {
    const std::string der = certificate_with_subject_email("ops@plant.example");
    ASSERT_FALSE(der.empty());
    CertificateFacts facts;
    ASSERT_TRUE(
        parse_certificate({reinterpret_cast<const std::uint8_t*>(der.data()), der.size()}, facts));
    EXPECT_EQ(facts.subject_email, "ops@plant.example");
    EXPECT_TRUE(facts.san_email.empty());
    AnalyzerRun run("tls", kIpProtoTcp, 443);
    run.feed(0, client_hello("scada-gw.plant.example"));
    run.feed(1, server_flight(der));
    run.end();
    EXPECT_TRUE(run.host.saw("X509::IN_CERT", "ops@plant.example"));
}

TEST(TlsAnalyzer, ARepeatedCertificateComesFromTheCacheWithTheSameFacts) {
    // Parsed certificates are kept per thread by their DER: the second and later connections
    // presenting the same chain must report exactly what the first did, and a certificate
    // differing in one byte is not taken for it.
    const std::string der = read_file(kCertPath);
    ASSERT_FALSE(der.empty()) << kCertPath;
    std::vector<std::string> records;
    for (int i = 0; i < 3; ++i) {
        AnalyzerRun run("tls", kIpProtoTcp, 443);
        run.feed(0, client_hello("portal.bad-vendor.example"));
        run.feed(1, server_flight(der));
        run.end();
        EXPECT_TRUE(run.host.saw("X509::IN_CERT", "portal.bad-vendor.example")) << i;
        EXPECT_TRUE(run.host.saw("X509::IN_CERT", "pki@bad-vendor.example")) << i;
        const auto tls = run.host.records_of("tls");
        ASSERT_EQ(tls.size(), 1U);
        records.push_back(tls[0]);
    }
    EXPECT_EQ(records[1], records[0]);
    EXPECT_EQ(records[2], records[0]);

    std::string other = der;
    other[other.size() - 1] = static_cast<char>(other.back() ^ 0x01);  // in the signature
    AnalyzerRun run("tls", kIpProtoTcp, 443);
    run.feed(0, client_hello("portal.bad-vendor.example"));
    run.feed(1, server_flight(other));
    run.end();
    const auto tls = run.host.records_of("tls");
    ASSERT_EQ(tls.size(), 1U);
    EXPECT_NE(tls[0], records[0]) << "a different DER has a different SHA-256";
}

TEST(TlsAnalyzer, DetectsHelloRecordsOnly) {
    const auto* spec = test::find_spec("tls", kIpProtoTcp);
    ASSERT_NE(spec, nullptr);
    const std::string hello = client_hello("x.example");
    auto span = [](const std::string& s) {
        return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()),
                                             s.size());
    };
    EXPECT_TRUE(spec->detect(span(hello), 0, 1, 2));
    EXPECT_FALSE(spec->detect(span("GET / HTTP/1.1\r\n\r\n"), 0, 1, 2));
    EXPECT_FALSE(spec->detect(span(record(23, std::string(50, 'x'))), 0, 1, 2));
}

TEST(TlsAnalyzer, CutAtEveryOffsetAndCorruptedBytesNeverCrash) {
    const std::string der = read_file(kCertPath);
    const std::string flight = server_flight(der);
    for (std::size_t cut = 0; cut < flight.size(); cut += 3) {
        AnalyzerRun run("tls", kIpProtoTcp, 443);
        run.feed(0, client_hello("c.example"));
        run.feed(1, flight.substr(0, cut));
        run.end();
        ASSERT_EQ(run.host.records_of("tls").size(), 1U) << "cut at " << cut;
    }
    // Every byte of the chain flipped in turn: OpenSSL refuses, the analyzer counts it.
    std::size_t weird_runs = 0;
    for (std::size_t i = 0; i < flight.size(); i += 11) {
        std::string bad = flight;
        bad[i] = static_cast<char>(bad[i] ^ 0xa5);
        AnalyzerRun run("tls", kIpProtoTcp, 443);
        run.feed(1, bad);
        run.end();
        if (!run.host.weirds.empty()) ++weird_runs;
    }
    EXPECT_GT(weird_runs, 0U);
}

}  // namespace
}  // namespace senningen::agent
