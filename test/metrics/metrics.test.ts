import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toyApp } from '../support/app.js';

test('GET /metrics exposes the gateway metrics in Prometheus text format', async () => {
  const { app } = await toyApp();
  await app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'Hello world', max_new_tokens: 3 },
  });
  await app.inject({ method: 'POST', url: '/complete', payload: { prompt: '' } });
  await app.inject('/nowhere');
  const res = await app.inject('/metrics');
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const text = res.body;
  const expectLine = (line: string) =>
    assert.ok(text.split('\n').includes(line), `missing line: ${line}`);
  expectLine('gpt2_gateway_http_requests_total{route="/complete",method="POST",status="200"} 1');
  expectLine('gpt2_gateway_http_requests_total{route="/complete",method="POST",status="400"} 1');
  expectLine('gpt2_gateway_http_requests_total{route="unmatched",method="GET",status="404"} 1');
  expectLine(
    'gpt2_gateway_http_request_duration_seconds_count{route="/complete",method="POST",status="200"} 1',
  );
  expectLine('gpt2_gateway_time_to_first_token_seconds_count 1');
  expectLine('gpt2_gateway_time_per_output_token_seconds_count 2');
  expectLine('gpt2_gateway_prompt_tokens_total 2');
  expectLine('gpt2_gateway_generated_tokens_total 3');
  expectLine(
    'gpt2_gateway_backend_step_duration_seconds_count{backend="embedded",variant="logits"} 3',
  );
  expectLine('gpt2_gateway_backend_batch_size_sum 3');
  expectLine('gpt2_gateway_generations_in_flight 0');
  expectLine('gpt2_gateway_generations_queued 0');
  expectLine('gpt2_gateway_rejections_total{reason="invalid_request"} 1');
  expectLine('gpt2_gateway_generations_total{finish_reason="length"} 1');
  assert.match(text, /^# TYPE gpt2_gateway_time_to_first_token_seconds histogram$/m);
  assert.match(text, /^process_cpu_seconds_total \d/m, 'default process metrics');
  assert.doesNotMatch(text, /Hello/, 'no prompt text in labels');
  await app.close();
});
