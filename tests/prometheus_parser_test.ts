import assert from "node:assert/strict";
import { parsePrometheus } from "./_prometheus.ts";

Deno.test("the test's Prometheus parser refuses malformed expositions", () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n';
  assert.equal(parsePrometheus(ok).get("a_total")!.samples[0]!.value, 2);
  const bad = [
    "garbage line here {\n",
    "# TYPE a counter\na notanumber\n",
    '# TYPE a counter\na{x="1" 1\n',
    '# TYPE a counter\na{x="1",x="2"} 1\n',
    "# TYPE a counter\na 1\na 2\n",
    "# TYPE a counter\n# TYPE b counter\na 1\n",
    "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na 2\n",
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n',
    "# TYPE a counter\na 1",
  ];
  for (const text of bad) assert.throws(() => parsePrometheus(text), Error, JSON.stringify(text));
});
