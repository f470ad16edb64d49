// The enrollment bundle: the one file `senningen-collector enroll` issues and
// `senningen-agent enroll` installs. Text, so that an administrator can see what it holds:
//
//   # Senningen agent enrollment bundle: it holds a private key, keep it secret
//   senningen-bundle: 1
//   agent: NAME
//   collector: HOST:PORT
//   -----BEGIN PRIVATE KEY----- ...      the agent's key
//   -----BEGIN CERTIFICATE----- ...      the agent's certificate (CN = NAME)
//   -----BEGIN CERTIFICATE----- ...      the CA certificate
#pragma once

#include <string>

#include "senningen/common/result.h"

namespace senningen::common {

inline constexpr int kBundleFormat = 1;

struct EnrollmentBundle {
    std::string agent;
    std::string collector;  // HOST:PORT
    std::string key_pem;
    std::string certificate_pem;
    std::string ca_pem;
};

std::string format_bundle(const EnrollmentBundle& bundle);

// Parses and checks a bundle: the format, every field, that the key belongs to the
// certificate, that the certificate was issued by the CA for AGENT and is valid now. Errors
// name SOURCE (the file) and the problem.
Result<EnrollmentBundle> parse_bundle(const std::string& text, const std::string& source);

// Agent names: 1..64 of [A-Za-z0-9._-], not starting with a dot or dash; they become file
// names, topic suffixes and certificate common names.
bool is_valid_agent_name(const std::string& name);

}  // namespace senningen::common
