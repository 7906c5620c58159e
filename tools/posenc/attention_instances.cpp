// posenc command line: the one compiled copy of the attention instances that
// attention_instances.hpp declares.
#include "attention_instances.hpp"

POSENC_CLI_ATTENTION_INSTANCES(, float)
POSENC_CLI_ATTENTION_INSTANCES(, double)
