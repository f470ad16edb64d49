#include "senningen/common/identity.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "senningen/common/openssl_util.h"
#include "senningen/common/record_codec.h"

namespace senningen::common {

std::string to_hex(const unsigned char* data, std::size_t n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out += kDigits[data[i] >> 4];
        out += kDigits[data[i] & 0xf];
    }
    return out;
}

namespace {

std::string openssl_reason() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "no detail from OpenSSL";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

Result<std::string> read_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(ErrorCode::kNotFound, std::string(what) + " '" + path + "' cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

BioPtr memory_bio(const std::string& text) {
    return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

X509Ptr parse_certificate(const std::string& pem) {
    BioPtr bio = memory_bio(pem);
    return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::string fingerprint(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509_digest(cert, EVP_sha256(), md, &n);
    return to_hex(md, n);
}

std::string subject_cn(X509* cert) {
    char cn[256] = {};
    const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                            sizeof cn);
    return n > 0 ? std::string(cn, static_cast<std::size_t>(n)) : std::string();
}

std::time_t not_after(X509* cert) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
    return timegm(&tm);
}

// Ed25519 signs the message itself; every other key type hashes it with SHA-256 first.
const EVP_MD* signature_md(EVP_PKEY* key) {
    return EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
}

// The canonical encoding fed to SHA-256; see digest_of().
class Hasher {
public:
    Hasher() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
    void number(std::uint64_t v) {
        unsigned char b[8];
        for (int i = 7; i >= 0; --i) {
            b[i] = static_cast<unsigned char>(v & 0xff);
            v >>= 8;
        }
        EVP_DigestUpdate(ctx_.get(), b, sizeof b);
    }
    void text(const std::string& s) {
        number(s.size());
        EVP_DigestUpdate(ctx_.get(), s.data(), s.size());
    }
    void tag(const char* t) { text(t); }
    Digest finish() {
        Digest d{};
        unsigned int n = 0;
        EVP_DigestFinal_ex(ctx_.get(), d.data(), &n);
        return d;
    }

private:
    MdCtxPtr ctx_;
};

// An alert is signed in the encoding the agent's queue stores it in: one length-prefixed
// layout of every field, kept in one place (record_codec.cc).
void hash_alert(Hasher& h, const Alert& a) { h.text(encode_alert_record(a)); }

}  // namespace

Digest digest_of(const AlertBatch& batch) {
    Hasher h;
    h.tag("senningen alert_batch");
    h.number(batch.wire_version);
    h.text(batch.agent_id);
    h.number(batch.batch_id);
    h.number(batch.alerts.size());
    if (batch.has_records()) {
        for (const auto& r : batch.records) h.text(r);
    } else {
        for (const auto& a : batch.alerts) hash_alert(h, a);
    }
    return h.finish();
}

Digest digest_of(const Heartbeat& hb) {
    Hasher h;
    h.tag("senningen heartbeat");
    h.number(kWireVersion);
    h.text(hb.agent_id);
    h.number(hb.sequence);
    h.text(hb.version);
    h.number(hb.uptime_s);
    h.text(hb.pack_version);
    h.number(hb.interval_s);
    h.number(hb.packets);
    h.number(hb.kernel_drops);
    h.number(hb.bytes);
    h.number(hb.files_scanned);
    h.number(hb.alerts);
    h.number(hb.queue_depth);
    h.number(hb.queue_oldest_age_s);
    h.number(hb.stopping ? 1 : 0);
    return h.finish();
}

Digest digest_of(const MetadataBatch& batch) {
    Hasher h;
    h.tag("senningen metadata_batch");
    h.number(batch.wire_version);
    h.text(batch.agent_id);
    h.number(batch.batch_id);
    h.number(batch.records.size());
    for (const auto& r : batch.records) h.text(r);
    return h.finish();
}

Result<std::string> certificate_fingerprint(const std::string& pem) {
    X509Ptr cert = parse_certificate(pem);
    if (!cert) return make_error(ErrorCode::kParse, "not a PEM certificate: " + openssl_reason());
    return fingerprint(cert.get());
}

Result<std::string> certificate_common_name(const std::string& pem) {
    X509Ptr cert = parse_certificate(pem);
    if (!cert) return make_error(ErrorCode::kParse, "not a PEM certificate: " + openssl_reason());
    std::string cn = subject_cn(cert.get());
    if (cn.empty()) return make_error(ErrorCode::kParse, "certificate has no common name");
    return cn;
}

// ---- Signer ----

struct Signer::Key {
    PkeyPtr pkey;
};

Signer::Signer(std::unique_ptr<Key> key, std::string certificate_pem, std::string common_name)
    : key_(std::move(key)),
      certificate_pem_(std::move(certificate_pem)),
      common_name_(std::move(common_name)) {}

Signer::~Signer() = default;

Result<std::unique_ptr<Signer>> Signer::load(const std::string& certificate_file,
                                             const std::string& key_file) {
    auto cert_text = read_file(certificate_file, "certificate");
    if (!cert_text) return cert_text.error();
    auto key_text = read_file(key_file, "private key");
    if (!key_text) return key_text.error();
    X509Ptr cert = parse_certificate(*cert_text);
    if (!cert) {
        return make_error(ErrorCode::kParse, "certificate '" + certificate_file +
                                                 "' is not PEM: " + openssl_reason());
    }
    BioPtr bio = memory_bio(*key_text);
    auto key = std::make_unique<Key>();
    key->pkey.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key->pkey) {
        return make_error(ErrorCode::kParse, "private key '" + key_file +
                                                 "' is not an unencrypted PEM key: " +
                                                 openssl_reason());
    }
    if (X509_check_private_key(cert.get(), key->pkey.get()) != 1) {
        ERR_clear_error();
        return make_error(ErrorCode::kInvalidArgument, "private key '" + key_file +
                                                           "' does not belong to certificate '" +
                                                           certificate_file + "'");
    }
    std::string cn = subject_cn(cert.get());
    if (cn.empty()) {
        return make_error(ErrorCode::kParse,
                          "certificate '" + certificate_file + "' has no common name");
    }
    return std::unique_ptr<Signer>(new Signer(std::move(key), *cert_text, std::move(cn)));
}

Result<std::string> Signer::sign_digest(const Digest& digest) const {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_PKEY* pkey = key_->pkey.get();
    std::size_t len = 0;
    if (EVP_DigestSignInit(ctx.get(), nullptr, signature_md(pkey), nullptr, pkey) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1) {
        return make_error(ErrorCode::kInternal, "signing failed: " + openssl_reason());
    }
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       digest.data(), digest.size()) != 1) {
        return make_error(ErrorCode::kInternal, "signing failed: " + openssl_reason());
    }
    sig.resize(len);
    return sig;
}

Result<void> Signer::sign(AlertBatch& batch) const {
    auto sig = sign_digest(digest_of(batch));
    if (!sig) return sig.error();
    batch.credentials = {certificate_pem_, std::move(sig).value()};
    return {};
}

Result<void> Signer::sign(Heartbeat& heartbeat) const {
    auto sig = sign_digest(digest_of(heartbeat));
    if (!sig) return sig.error();
    heartbeat.credentials = {certificate_pem_, std::move(sig).value()};
    return {};
}

Result<void> Signer::sign(MetadataBatch& batch) const {
    auto sig = sign_digest(digest_of(batch));
    if (!sig) return sig.error();
    batch.credentials = {certificate_pem_, std::move(sig).value()};
    return {};
}

// ---- PeerVerifier ----

namespace {

struct VerifiedCert {
    std::string agent_id;
    PkeyPtr key;
    std::time_t not_after = 0;
};

// Enough for every agent of a large site; beyond it the cache starts over rather than grow.
constexpr std::size_t kMaxCachedCertificates = 100000;

}  // namespace

struct PeerVerifier::State {
    std::mutex mutex;
    std::string ca_file;
    std::string crl_file;
    std::string ca_pem;
    struct timespec crl_mtime {};
    off_t crl_size = -1;
    StorePtr store;
    std::map<std::string, VerifiedCert> cache;

    // (Re)builds the trust store from the CA and the current revocation list.
    Result<void> build_store() {
        StorePtr s(X509_STORE_new());
        BioPtr bio = memory_bio(ca_pem);
        int added = 0;
        while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
            X509_STORE_add_cert(s.get(), c);
            X509_free(c);
            ++added;
        }
        ERR_clear_error();  // the end of the PEM stream reads as an error
        if (added == 0) {
            return make_error(ErrorCode::kParse, "CA file '" + ca_file + "' holds no PEM certificate");
        }
        if (!crl_file.empty()) {
            auto text = read_file(crl_file, "revocation list");
            if (!text) return text.error();
            BioPtr crl_bio = memory_bio(*text);
            CrlPtr crl(PEM_read_bio_X509_CRL(crl_bio.get(), nullptr, nullptr, nullptr));
            if (!crl) {
                return make_error(ErrorCode::kParse, "revocation list '" + crl_file +
                                                         "' is not a PEM CRL: " + openssl_reason());
            }
            X509_STORE_add_crl(s.get(), crl.get());
            X509_STORE_set_flags(s.get(), X509_V_FLAG_CRL_CHECK);
            struct stat st {};
            if (::stat(crl_file.c_str(), &st) == 0) {
                crl_mtime = st.st_mtim;
                crl_size = st.st_size;
            }
        }
        store = std::move(s);
        cache.clear();
        return {};
    }

    bool crl_changed() const {
        if (crl_file.empty()) return false;
        struct stat st {};
        if (::stat(crl_file.c_str(), &st) != 0) return true;  // reported by build_store()
        return st.st_mtim.tv_sec != crl_mtime.tv_sec || st.st_mtim.tv_nsec != crl_mtime.tv_nsec ||
               st.st_size != crl_size;
    }
};

PeerVerifier::PeerVerifier(std::unique_ptr<State> state) : state_(std::move(state)) {}
PeerVerifier::~PeerVerifier() = default;

Result<std::unique_ptr<PeerVerifier>> PeerVerifier::create(const std::string& ca_file,
                                                           const std::string& crl_file) {
    auto state = std::make_unique<State>();
    state->ca_file = ca_file;
    state->crl_file = crl_file;
    auto ca = read_file(ca_file, "CA certificate");
    if (!ca) return ca.error();
    state->ca_pem = std::move(ca).value();
    if (auto built = state->build_store(); !built) return built.error();
    return std::unique_ptr<PeerVerifier>(new PeerVerifier(std::move(state)));
}

Result<std::string> PeerVerifier::verify(const AlertBatch& batch) {
    return verify(batch.credentials, digest_of(batch));
}

Result<std::string> PeerVerifier::verify(const Heartbeat& heartbeat) {
    return verify(heartbeat.credentials, digest_of(heartbeat));
}

Result<std::string> PeerVerifier::verify(const MetadataBatch& batch) {
    return verify(batch.credentials, digest_of(batch));
}

Result<std::string> PeerVerifier::verify(const Credentials& credentials, const Digest& digest) {
    if (credentials.certificate.empty()) {
        return make_error(ErrorCode::kDenied, "message carries no certificate");
    }
    X509Ptr cert = parse_certificate(credentials.certificate);
    if (!cert) {
        ERR_clear_error();
        return make_error(ErrorCode::kDenied, "message carries no readable certificate");
    }
    const std::string fp = fingerprint(cert.get());
    const std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->crl_changed()) {
        if (auto rebuilt = state_->build_store(); !rebuilt) {
            // Fail closed: without a readable revocation list nobody is let in.
            return make_error(ErrorCode::kDenied, "revocation list unusable: " +
                                                      rebuilt.error().message);
        }
    }
    auto it = state_->cache.find(fp);
    if (it != state_->cache.end() && std::time(nullptr) > it->second.not_after) {
        state_->cache.erase(it);
        it = state_->cache.end();
    }
    if (it == state_->cache.end()) {
        StoreCtxPtr ctx(X509_STORE_CTX_new());
        X509_STORE_CTX_init(ctx.get(), state_->store.get(), cert.get(), nullptr);
        if (X509_verify_cert(ctx.get()) != 1) {
            const int err = X509_STORE_CTX_get_error(ctx.get());
            ERR_clear_error();
            return make_error(ErrorCode::kDenied,
                              std::string("certificate of '") + subject_cn(cert.get()) + "' (" +
                                  fp.substr(0, 16) + ") refused: " +
                                  X509_verify_cert_error_string(err));
        }
        VerifiedCert v;
        v.agent_id = subject_cn(cert.get());
        if (v.agent_id.empty()) {
            return make_error(ErrorCode::kDenied, "certificate has no common name");
        }
        v.key.reset(X509_get_pubkey(cert.get()));
        v.not_after = not_after(cert.get());
        if (state_->cache.size() >= kMaxCachedCertificates) state_->cache.clear();
        it = state_->cache.emplace(fp, std::move(v)).first;
    }
    EVP_PKEY* key = it->second.key.get();
    MdCtxPtr md(EVP_MD_CTX_new());
    const auto* sig = reinterpret_cast<const unsigned char*>(credentials.signature.data());
    if (EVP_DigestVerifyInit(md.get(), nullptr, signature_md(key), nullptr, key) != 1 ||
        EVP_DigestVerify(md.get(), sig, credentials.signature.size(), digest.data(),
                         digest.size()) != 1) {
        ERR_clear_error();
        return make_error(ErrorCode::kDenied, "bad signature for the certificate of '" +
                                                  it->second.agent_id + "'");
    }
    return it->second.agent_id;
}

}  // namespace senningen::common
