#!/bin/bash
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
maml_launch distribute_train Ascend "$@"
