import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, planSchedule } from './schedule.js';

describe('the nemesis schedule', () => {
  it('is a pure function of the seed', () => {
    expect(planSchedule(42, 120)).toEqual(planSchedule(42, 120));
    expect(planSchedule(42, 120)).not.toEqual(planSchedule(43, 120));
  });

  it('starts with every kind of fault once, even on a short budget', () => {
    const steps = planSchedule(7, 1);
    expect(steps.map((s) => s.kind).sort()).toEqual([...FAULT_KINDS].sort());
  });

  it('keeps drawing faults until the time budget is spent', () => {
    expect(planSchedule(7, 600).length).toBeGreaterThan(FAULT_KINDS.length * 3);
  });
});
