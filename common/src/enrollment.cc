#include "senningen/common/enrollment.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <sstream>
#include <vector>

namespace senningen::common {

namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
    void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

BioPtr memory_bio(const std::string& text) {
    return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

X509Ptr parse_certificate(const std::string& pem) {
    BioPtr bio = memory_bio(pem);
    return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

}  // namespace

bool is_valid_agent_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

std::string format_bundle(const EnrollmentBundle& b) {
    std::string out = "# Senningen agent enrollment bundle: it holds a private key, keep it secret\n";
    out += "senningen-bundle: " + std::to_string(kBundleFormat) + "\n";
    out += "agent: " + b.agent + "\n";
    out += "collector: " + b.collector + "\n";
    out += b.key_pem + b.certificate_pem + b.ca_pem;
    return out;
}

Result<EnrollmentBundle> parse_bundle(const std::string& text, const std::string& source) {
    auto bad = [&](const std::string& problem) {
        return make_error(ErrorCode::kParse, "bundle '" + source + "': " + problem);
    };
    EnrollmentBundle b;
    std::istringstream in(text);
    std::string line;
    bool format_seen = false;
    std::vector<std::string> blocks;
    std::string block;
    while (std::getline(in, line)) {
        if (!block.empty()) {
            block += line + "\n";
            if (line.rfind("-----END ", 0) == 0) blocks.push_back(std::exchange(block, {}));
            continue;
        }
        if (line.rfind("-----BEGIN ", 0) == 0) {
            block = line + "\n";
            continue;
        }
        const std::string t = trim(line);
        if (t.empty() || t[0] == '#') continue;
        const auto colon = t.find(':');
        if (colon == std::string::npos) return bad("line '" + t + "' is not 'key: value'");
        const std::string key = trim(t.substr(0, colon));
        const std::string value = trim(t.substr(colon + 1));
        if (key == "senningen-bundle") {
            if (value != std::to_string(kBundleFormat)) {
                return bad("format " + value + " is not supported (this build reads " +
                           std::to_string(kBundleFormat) + ")");
            }
            format_seen = true;
        } else if (key == "agent") {
            b.agent = value;
        } else if (key == "collector") {
            b.collector = value;
        } else {
            return bad("unknown field '" + key + "'");
        }
    }
    if (!block.empty()) return bad("a PEM block is not terminated");
    if (!format_seen) return bad("no 'senningen-bundle: 1' line; not an enrollment bundle");
    if (!is_valid_agent_name(b.agent)) return bad("agent name '" + b.agent + "' is not valid");
    const auto colon = b.collector.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == b.collector.size()) {
        return bad("collector '" + b.collector + "' is not HOST:PORT");
    }
    if (blocks.size() != 3) {
        return bad("expected 3 PEM blocks (key, certificate, CA certificate), found " +
                   std::to_string(blocks.size()));
    }
    b.key_pem = blocks[0];
    b.certificate_pem = blocks[1];
    b.ca_pem = blocks[2];

    BioPtr key_bio = memory_bio(b.key_pem);
    PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    X509Ptr cert = parse_certificate(b.certificate_pem);
    X509Ptr ca = parse_certificate(b.ca_pem);
    ERR_clear_error();
    if (!key) return bad("the first PEM block is not an unencrypted private key");
    if (!cert) return bad("the second PEM block is not a certificate");
    if (!ca) return bad("the third PEM block is not a certificate");
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        ERR_clear_error();
        return bad("the private key does not belong to the certificate");
    }
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn);
    if (b.agent != cn) {
        return bad("the certificate names '" + std::string(cn) + "', not agent '" + b.agent + "'");
    }
    StorePtr store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), ca.get());
    StoreCtxPtr ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr);
    if (X509_verify_cert(ctx.get()) != 1) {
        const int err = X509_STORE_CTX_get_error(ctx.get());
        ERR_clear_error();
        return bad(std::string("the certificate does not verify against the bundle's CA: ") +
                   X509_verify_cert_error_string(err));
    }
    return b;
}

}  // namespace senningen::common
