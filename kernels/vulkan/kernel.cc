// Kernels: a shader module with its descriptor-set and pipeline layouts
// (storage buffers at bindings 0..n-1, one push-constant range), and its
// pipelines, made lazily per tuple of specialization-constant values through
// the device's VkPipelineCache.
#include <string>
#include <vector>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk::detail {

Kernel::Kernel(Device::Impl& device, std::string name, std::span<const uint32_t> spirv, uint32_t num_buffers,
               uint32_t written_bindings, uint32_t push_constant_bytes)
    : device_(device),
      name_(std::move(name)),
      num_buffers_(num_buffers),
      written_bindings_(written_bindings),
      push_constant_bytes_(push_constant_bytes) {
  require(push_constant_bytes <= device.limits.maxPushConstantsSize, "vulkan: kernel '", name_, "' needs ",
          push_constant_bytes, " bytes of push constants; the device allows ", device.limits.maxPushConstantsSize);
  VkDevice d = device.device;
  try {
    VkShaderModuleCreateInfo module{};
    module.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
    module.codeSize = spirv.size_bytes();
    module.pCode = spirv.data();
    check(vkCreateShaderModule(d, &module, nullptr, &module_), "vkCreateShaderModule (kernel " + name_ + ")");

    std::vector<VkDescriptorSetLayoutBinding> bindings(num_buffers);
    for (uint32_t i = 0; i < num_buffers; ++i) {
      bindings[i].binding = i;
      bindings[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      bindings[i].descriptorCount = 1;
      bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo set{};
    set.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
    set.bindingCount = num_buffers;
    set.pBindings = bindings.data();
    check(vkCreateDescriptorSetLayout(d, &set, nullptr, &set_layout_),
          "vkCreateDescriptorSetLayout (kernel " + name_ + ")");

    const VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_constant_bytes};
    VkPipelineLayoutCreateInfo layout{};
    layout.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
    layout.setLayoutCount = 1;
    layout.pSetLayouts = &set_layout_;
    layout.pushConstantRangeCount = push_constant_bytes > 0 ? 1 : 0;
    layout.pPushConstantRanges = &range;
    check(vkCreatePipelineLayout(d, &layout, nullptr, &layout_), "vkCreatePipelineLayout (kernel " + name_ + ")");
  } catch (...) {
    release();
    throw;
  }
}

Kernel::~Kernel() { release(); }

void Kernel::release() {
  VkDevice d = device_.device;
  for (auto& [values, pipeline] : pipelines_) vkDestroyPipeline(d, pipeline, nullptr);
  pipelines_.clear();
  if (layout_) vkDestroyPipelineLayout(d, layout_, nullptr);
  if (set_layout_) vkDestroyDescriptorSetLayout(d, set_layout_, nullptr);
  if (module_) vkDestroyShaderModule(d, module_, nullptr);
  layout_ = VK_NULL_HANDLE;
  set_layout_ = VK_NULL_HANDLE;
  module_ = VK_NULL_HANDLE;
}

VkPipeline Kernel::pipeline(std::span<const uint32_t> spec_values) {
  std::vector<uint32_t> key(spec_values.begin(), spec_values.end());
  // Streams on several threads may share the device's kernels.
  std::lock_guard lock(device_.kernels_mutex);
  if (auto found = pipelines_.find(key); found != pipelines_.end()) return found->second;

  std::vector<VkSpecializationMapEntry> entries(key.size());
  for (uint32_t i = 0; i < key.size(); ++i) entries[i] = {i, i * 4u, 4u};
  VkSpecializationInfo specialization{};
  specialization.mapEntryCount = static_cast<uint32_t>(entries.size());
  specialization.pMapEntries = entries.data();
  specialization.dataSize = key.size() * sizeof(uint32_t);
  specialization.pData = key.data();

  VkComputePipelineCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
  info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module_;
  info.stage.pName = "main";
  info.stage.pSpecializationInfo = key.empty() ? nullptr : &specialization;
  info.layout = layout_;
  VkPipeline pipeline = VK_NULL_HANDLE;
  std::string values;
  for (uint32_t v : key) {
    if (!values.empty()) values += ',';
    values += std::to_string(v);
  }
  check(vkCreateComputePipelines(device_.device, device_.pipeline_cache, 1, &info, nullptr, &pipeline),
        "vkCreateComputePipelines (kernel " + name_ + ", specialization {" + values + "})");
  pipelines_.emplace(std::move(key), pipeline);
  return pipeline;
}

}  // namespace seqk::vk::detail
