#include "senningen/collector/ca.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "senningen/common/enrollment.h"
#include "senningen/common/openssl_util.h"

namespace senningen::collector {

namespace {

using common::ErrorCode;
using common::make_error;
using common::Result;

using common::BioPtr;
using common::CrlPtr;
using common::PkeyPtr;
using common::X509Ptr;
using BnPtr = std::unique_ptr<BIGNUM, common::OpensslDeleter<BIGNUM, BN_free>>;

constexpr std::int64_t kDay = 86400;
// The revocation list is re-signed at every revocation; between those it must not expire,
// or OpenSSL would refuse every agent ("CRL has expired").
constexpr std::int64_t kCrlValidity = 10 * 365 * kDay;

std::string openssl_reason() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "no detail from OpenSSL";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

Result<std::string> read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(ErrorCode::kNotFound, "'" + path + "' cannot be read");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Writes through a temporary file and rename(), so a crash never leaves half a key or CRL.
Result<void> write_file(const std::string& path, const std::string& text, mode_t mode) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return make_error(ErrorCode::kIo, "cannot write '" + tmp + "': " + std::strerror(errno));
    }
    ::fchmod(fd, mode);  // the umask must not widen or narrow what we meant
    const char* p = text.data();
    std::size_t left = text.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::close(fd);
            return make_error(ErrorCode::kIo, "cannot write '" + tmp + "': " + std::strerror(errno));
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    ::fsync(fd);
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        return make_error(ErrorCode::kIo, "cannot rename '" + tmp + "' to '" + path + "': " +
                                              std::strerror(errno));
    }
    return {};
}

PkeyPtr new_key() { return PkeyPtr(EVP_EC_gen("P-256")); }

std::string key_pem(EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string cert_pem(X509* cert) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

bool add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext) return false;
    const bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

enum class CertRole { kCa, kServer, kAgent };

// A certificate for KEY named CN, signed by ISSUER_KEY (ISSUER null: self-signed). Returns the
// certificate and its serial in hex.
Result<std::pair<X509Ptr, std::string>> make_certificate(EVP_PKEY* key, const std::string& cn,
                                                         X509* issuer, EVP_PKEY* issuer_key,
                                                         std::int64_t not_before,
                                                         std::int64_t not_after, CertRole role) {
    X509Ptr cert(X509_new());
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) {
        return make_error(ErrorCode::kInternal, "no randomness for a serial: " + openssl_reason());
    }
    serial[0] &= 0x7f;  // positive
    BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
    X509_set_version(cert.get(), 2);
    BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
    ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(not_before));
    ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(not_after));
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("Senningen"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509* issuer_cert = issuer ? issuer : cert.get();
    bool ok = add_extension(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
    switch (role) {
        case CertRole::kCa:
            ok = ok && add_extension(cert.get(), issuer_cert, NID_basic_constraints,
                                     "critical,CA:TRUE,pathlen:0");
            ok = ok && add_extension(cert.get(), issuer_cert, NID_key_usage,
                                     "critical,keyCertSign,cRLSign");
            break;
        case CertRole::kServer:
        case CertRole::kAgent:
            ok = ok && add_extension(cert.get(), issuer_cert, NID_basic_constraints,
                                     "critical,CA:FALSE");
            ok = ok && add_extension(cert.get(), issuer_cert, NID_key_usage,
                                     "critical,digitalSignature,keyAgreement");
            // Broker peers are both client and server of one TLS connection's roles.
            ok = ok && add_extension(cert.get(), issuer_cert, NID_ext_key_usage,
                                     "serverAuth,clientAuth");
            ok = ok && add_extension(cert.get(), issuer_cert, NID_authority_key_identifier,
                                     "keyid:always");
            break;
    }
    if (!ok) return make_error(ErrorCode::kInternal, "certificate extension: " + openssl_reason());
    if (X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
        return make_error(ErrorCode::kInternal, "signing the certificate: " + openssl_reason());
    }
    return std::make_pair(std::move(cert), common::to_hex(serial, sizeof serial));
}

struct IndexEntry {
    std::string serial;
    std::string name;
    std::int64_t not_after = 0;
    char status = 'V';
    std::int64_t revoked_at = 0;
};

Result<std::vector<IndexEntry>> read_index(const CaPaths& paths) {
    std::vector<IndexEntry> out;
    std::ifstream in(paths.index());
    if (!in) return out;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty() || line[0] == '#') continue;
        std::istringstream f(line);
        IndexEntry e;
        std::string status;
        if (!(f >> e.serial >> e.name >> e.not_after >> status >> e.revoked_at) ||
            (status != "V" && status != "R")) {
            return make_error(ErrorCode::kParse,
                              paths.index() + ":" + std::to_string(n) + ": not an index line");
        }
        e.status = status[0];
        out.push_back(std::move(e));
    }
    return out;
}

Result<void> write_index(const CaPaths& paths, const std::vector<IndexEntry>& entries) {
    std::string text = "# serial\tagent\tnot_after\tstatus\trevoked_at\n";
    for (const auto& e : entries) {
        text += e.serial + "\t" + e.name + "\t" + std::to_string(e.not_after) + "\t" + e.status +
                "\t" + std::to_string(e.revoked_at) + "\n";
    }
    return write_file(paths.index(), text, 0600);
}

struct LoadedCa {
    X509Ptr cert;
    PkeyPtr key;
    std::string cert_pem;
};

Result<LoadedCa> load_ca(const CaPaths& paths) {
    auto cert_text = read_text(paths.ca_certificate());
    if (!cert_text) {
        return make_error(ErrorCode::kNotFound, "no CA in '" + paths.dir +
                                                    "' (run 'senningen-collector ca init --dir " +
                                                    paths.dir + "' first)");
    }
    auto key_text = read_text(paths.ca_key());
    if (!key_text) return key_text.error();
    LoadedCa ca;
    ca.cert_pem = *cert_text;
    BioPtr cb(BIO_new_mem_buf(cert_text->data(), static_cast<int>(cert_text->size())));
    ca.cert.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
    BioPtr kb(BIO_new_mem_buf(key_text->data(), static_cast<int>(key_text->size())));
    ca.key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
    if (!ca.cert || !ca.key) {
        return make_error(ErrorCode::kParse, "CA in '" + paths.dir + "' is unreadable: " +
                                                 openssl_reason());
    }
    return ca;
}

Result<void> write_crl(const CaPaths& paths, const LoadedCa& ca,
                       const std::vector<IndexEntry>& entries) {
    CrlPtr crl(X509_CRL_new());
    X509_CRL_set_version(crl.get(), 1);
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get()));
    const std::time_t now = std::time(nullptr);
    ASN1_TIME* last = ASN1_TIME_set(nullptr, now);
    ASN1_TIME* next = ASN1_TIME_set(nullptr, static_cast<time_t>(now + kCrlValidity));
    X509_CRL_set1_lastUpdate(crl.get(), last);
    X509_CRL_set1_nextUpdate(crl.get(), next);
    ASN1_TIME_free(last);
    ASN1_TIME_free(next);
    for (const auto& e : entries) {
        if (e.status != 'R') continue;
        BIGNUM* raw = nullptr;
        if (BN_hex2bn(&raw, e.serial.c_str()) == 0) {
            return make_error(ErrorCode::kParse, paths.index() + ": serial '" + e.serial +
                                                     "' is not hex");
        }
        BnPtr bn(raw);
        X509_REVOKED* r = X509_REVOKED_new();
        ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn.get(), nullptr);
        ASN1_TIME* when = ASN1_TIME_set(nullptr, static_cast<time_t>(e.revoked_at));
        X509_REVOKED_set_serialNumber(r, serial);
        X509_REVOKED_set_revocationDate(r, when);
        ASN1_INTEGER_free(serial);
        ASN1_TIME_free(when);
        X509_CRL_add0_revoked(crl.get(), r);
    }
    X509_CRL_sort(crl.get());
    if (X509_CRL_sign(crl.get(), ca.key.get(), EVP_sha256()) <= 0) {
        return make_error(ErrorCode::kInternal, "signing the CRL: " + openssl_reason());
    }
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509_CRL(bio.get(), crl.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return write_file(paths.crl(), std::string(data, static_cast<std::size_t>(n)), 0644);
}

}  // namespace

Result<void> init_ca(const std::string& dir, int days) {
    if (days < 1 || days > 36500) {
        return make_error(ErrorCode::kInvalidArgument,
                          "--days " + std::to_string(days) + " is not 1..36500");
    }
    const CaPaths paths{dir};
    std::error_code ec;
    if (std::filesystem::exists(paths.ca_key(), ec) ||
        std::filesystem::exists(paths.ca_certificate(), ec)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "'" + dir + "' already holds a CA; it is never overwritten");
    }
    std::filesystem::create_directories(dir, ec);
    if (ec) return make_error(ErrorCode::kIo, "cannot create '" + dir + "': " + ec.message());
    ::chmod(dir.c_str(), 0700);

    const std::int64_t now = std::time(nullptr);
    PkeyPtr ca_key = new_key();
    PkeyPtr collector_key = new_key();
    if (!ca_key || !collector_key) {
        return make_error(ErrorCode::kInternal, "key generation failed: " + openssl_reason());
    }
    auto ca = make_certificate(ca_key.get(), "Senningen CA", nullptr, nullptr, now - 60,
                               now + days * kDay, CertRole::kCa);
    if (!ca) return ca.error();
    auto server = make_certificate(collector_key.get(), kCollectorCommonName, ca->first.get(),
                                   ca_key.get(), now - 60, now + days * kDay, CertRole::kServer);
    if (!server) return server.error();

    for (auto r : {write_file(paths.ca_key(), key_pem(ca_key.get()), 0600),
                   write_file(paths.ca_certificate(), cert_pem(ca->first.get()), 0644),
                   write_file(paths.collector_key(), key_pem(collector_key.get()), 0600),
                   write_file(paths.collector_certificate(), cert_pem(server->first.get()), 0644),
                   write_index(paths, {})}) {
        if (!r) return r;
    }
    LoadedCa loaded{std::move(ca->first), std::move(ca_key), ""};
    return write_crl(paths, loaded, {});
}

Result<IssuedCertificate> issue_agent_certificate(const std::string& dir, const std::string& name,
                                                  std::int64_t not_before,
                                                  std::int64_t not_after) {
    if (!common::is_valid_agent_name(name)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "agent name '" + name +
                              "' is not 1..64 of A-Z a-z 0-9 . _ - (not starting with . or -)");
    }
    if (name == kCollectorCommonName) {
        return make_error(ErrorCode::kInvalidArgument,
                          "agent name '" + name + "' is the collector's own name");
    }
    if (not_after <= not_before) {
        return make_error(ErrorCode::kInvalidArgument, "certificate validity window is empty");
    }
    const CaPaths paths{dir};
    auto ca = load_ca(paths);
    if (!ca) return ca.error();
    auto entries = read_index(paths);
    if (!entries) return entries.error();
    PkeyPtr key = new_key();
    if (!key) return make_error(ErrorCode::kInternal, "key generation failed: " + openssl_reason());
    auto cert = make_certificate(key.get(), name, ca->cert.get(), ca->key.get(), not_before,
                                 not_after, CertRole::kAgent);
    if (!cert) return cert.error();
    entries->push_back(IndexEntry{cert->second, name, not_after, 'V', 0});
    if (auto w = write_index(paths, *entries); !w) return w.error();
    return IssuedCertificate{cert->second, key_pem(key.get()), cert_pem(cert->first.get()),
                             ca->cert_pem};
}

Result<std::size_t> revoke_agent(const std::string& dir, const std::string& name) {
    const CaPaths paths{dir};
    auto ca = load_ca(paths);
    if (!ca) return ca.error();
    auto entries = read_index(paths);
    if (!entries) return entries.error();
    std::size_t revoked = 0;
    const std::int64_t now = std::time(nullptr);
    for (auto& e : *entries) {
        if (e.name == name && e.status == 'V') {
            e.status = 'R';
            e.revoked_at = now;
            ++revoked;
        }
    }
    if (revoked == 0) {
        return make_error(ErrorCode::kNotFound,
                          "no valid certificate issued to agent '" + name + "' in '" + dir + "'");
    }
    // The CRL first: if writing the index then fails, the revocation is already in force.
    if (auto w = write_crl(paths, *ca, *entries); !w) return w.error();
    if (auto w = write_index(paths, *entries); !w) return w.error();
    return revoked;
}

}  // namespace senningen::collector
