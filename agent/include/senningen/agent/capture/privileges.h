// Dropping root once the capture handle is open: the agent then runs as an unprivileged user
// with no supplementary groups and no capabilities (a later setuid(0) must fail).
#pragma once

#include <string>

#include "senningen/common/result.h"

namespace senningen::agent {

// Switches to USER's uid and primary gid, clearing supplementary groups. Errors: kNotFound
// (no such user), kDenied (the switch failed, or root could be regained afterwards).
common::Result<void> drop_privileges(const std::string& user);

}  // namespace senningen::agent
