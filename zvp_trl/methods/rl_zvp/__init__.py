# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
