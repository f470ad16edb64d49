// The one Broker encoding of the wire messages. Everything that turns broker::data into
// Senningen types, or back, lives here: nobody else hand-decodes broker::data.
#pragma once

#include "senningen/common/result.h"
#include "senningen/common/wire.h"

namespace broker {
class data;
}

namespace senningen::common {

broker::data to_broker(const Alert& alert);
broker::data to_broker(const AlertBatch& batch);
broker::data to_broker(const MetadataBatch& batch);
broker::data to_broker(const BatchAck& ack);
broker::data to_broker(const Heartbeat& heartbeat);

// Each checks the message tag, the wire version, every field's type and the model's
// invariants, and names the field that is wrong.
Result<Alert> alert_from_broker(const broker::data& data);
Result<AlertBatch> batch_from_broker(const broker::data& data);
Result<MetadataBatch> metadata_batch_from_broker(const broker::data& data);
Result<BatchAck> ack_from_broker(const broker::data& data);
Result<Heartbeat> heartbeat_from_broker(const broker::data& data);

}  // namespace senningen::common
