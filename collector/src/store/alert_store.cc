#include "senningen/collector/alert_store.h"

namespace senningen::collector {

// Out of line so that the vtable has one home.
AlertStore::~AlertStore() = default;

}  // namespace senningen::collector
